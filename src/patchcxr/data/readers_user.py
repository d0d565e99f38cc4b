"""Readers of a user's own data: a CSV listing images and their labels (``csv``:
``path,label[,patient_id,view,sex,age]``) and a folder of DICOM files (``dicom``: the label
from option ``label`` or a ``labels.csv``; the metadata from the DICOM header). Each returns
a :class:`~patchcxr.data.records.SourceIndex`; :func:`patchcxr.data.readers.read_source`
dispatches to them."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchcxr.data.labels import LABEL5, LabelRules
from patchcxr.data.records import (
    ImageRecord,
    SourceIndex,
    SourceLayoutError,
    age_years,
    keeps_view,
    leaves_source,
    outside,
    paediatric_flag,
    sex_code,
    source_files,
)


def read_csv_source(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    table = root / spec.get("csv", "images.csv")
    if not table.is_file():
        raise SourceLayoutError(f"{name}: CSV {table} not found")
    real_root = root.resolve()
    with open(table, newline="", encoding="utf-8-sig") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            listed = (row.get("path") or "").strip()
            path = table.parent / listed
            escaped = outside(path, [real_root])
            if listed and escaped is not None:
                index.skip(name, path, leaves_source(escaped))
                continue
            path = path.resolve()
            if not listed or not path.is_file():
                index.skip(name, f"{table}:{n}", "metadata row whose image is missing")
                continue
            label = (row.get("label") or "").strip().lower()
            if label not in LABEL5:
                label, reason = rules.classify(label)
                if reason:
                    index.skip(name, path, reason)
                    continue
            age = age_years(row["age"]) if (row.get("age") or "").strip() else None
            rec = ImageRecord(
                name,
                "csv",
                path.stem,
                path,
                patient_id=f"{name}:{(row.get('patient_id') or path.stem).strip()}",
                view=(row.get("view") or "PA").strip(),
                sex=sex_code(row.get("sex", "")),
                age=age,
                paediatric=paediatric_flag(age, rules),
                finding_raw=label,
                label5=label,
                license=spec.get("license", ""),
            )
            if keeps_view(index, rec, rules):
                index.records.append(rec)
    return index


def read_dicom_folder(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    import pydicom

    index = SourceIndex()
    labels: dict[str, str] = {}
    if (root / "labels.csv").is_file():
        with open(root / "labels.csv", newline="") as fh:
            labels = {r["file"]: r["label"] for r in csv.DictReader(fh)}
    files = [p for p in source_files(root, "*") if p.suffix.lower() in (".dcm", ".dicom", "")]
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:
            index.skip(name, path, f"unreadable DICOM header: {type(err).__name__}")
            continue
        raw = labels.get(path.name, spec.get("label", ""))
        label, reason = (raw, None) if raw in LABEL5 else rules.classify(str(raw))
        if reason:
            index.skip(name, path, reason)
            continue
        age = age_years(str(getattr(ds, "PatientAge", ""))) if getattr(ds, "PatientAge", "") else None
        rec = ImageRecord(
            name,
            "dicom",
            path.stem,
            path,
            patient_id=f"{name}:{getattr(ds, 'PatientID', path.stem)}",
            view=str(getattr(ds, "ViewPosition", "") or "PA"),
            sex=sex_code(str(getattr(ds, "PatientSex", ""))),
            age=age,
            paediatric=paediatric_flag(age, rules),
            finding_raw=str(raw),
            label5=label,
            license=spec.get("license", ""),
        )
        if keeps_view(index, rec, rules):
            index.records.append(rec)
    if not files:
        raise SourceLayoutError(f"{name}: no DICOM files under {root}")
    return index
