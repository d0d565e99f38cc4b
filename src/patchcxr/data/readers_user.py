"""Readers of a user's own data: a CSV listing images and their labels (``csv``:
``path,label[,patient_id,view,sex,age]``) and a folder of DICOM files (``dicom``: the label
from option ``label`` or a ``labels.csv``; the metadata from the DICOM header). Each returns
a :class:`~patchcxr.data.records.SourceIndex`; :func:`patchcxr.data.readers.read_source`
dispatches to them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchcxr.data.intake import each_row, read_table
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

#: the modalities of a chest radiograph (computed and digital radiography)
RADIOGRAPH_MODALITIES = ("CR", "DX")


def read_csv_source(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    path_of_table = root / spec.get("csv", "images.csv")
    if not path_of_table.is_file():
        raise SourceLayoutError(f"{name}: CSV {path_of_table} not found")
    table = read_table(path_of_table, ("path", "label"), name)
    index.metadata[str(path_of_table)] = table.note
    real_root = root.resolve()

    def row_of(line: int, row: Mapping[str, str]) -> str | None:
        listed = (row.get("path") or "").strip()
        if not listed:
            index.skip(name, f"{path_of_table}:{line}", "metadata row without a path")
            return None
        path = Path(os.path.normpath(path_of_table.parent / listed))
        escaped = outside(path, [real_root])
        if escaped is not None:
            index.skip(name, path, leaves_source(escaped))
            return None
        if not path.is_file():
            index.skip(name, f"{path_of_table}:{line}", "metadata row whose image is missing")
            return None
        label = (row.get("label") or "").strip().lower()
        if label not in LABEL5:
            label, reason = rules.classify(label)
            if reason:
                index.skip(name, path, reason)
                return None
        age = age_years(row["age"]) if (row.get("age") or "").strip() else None
        rec = ImageRecord(
            name,
            "csv",
            path.stem,
            path,
            patient_id=f"{name}:{(row.get('patient_id') or '').strip()}",
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
        return None

    each_row(index, name, table, row_of)
    return index


def _modality(ds: Any) -> str:
    """A DICOM header's modality, upper case, or ``""`` when the tag is absent or blank."""
    return str(getattr(ds, "Modality", "") or "").strip().upper()


def read_dicom_folder(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    import pydicom

    index = SourceIndex()
    labels: dict[str, str] = {}
    files = [p for p in source_files(root, "*") if p.suffix.lower() in (".dcm", ".dicom", "")]
    if not files:
        raise SourceLayoutError(f"{name}: no DICOM files under {root}")
    names = {p.name for p in files}
    if (root / "labels.csv").is_file():
        table = read_table(root / "labels.csv", ("file", "label"), name)
        index.metadata[str(root / "labels.csv")] = table.note

        def label_row(line: int, row: Mapping[str, str]) -> str | None:
            file = (row.get("file") or "").strip()
            if file not in names:
                index.skip(name, f"{table.path}:{line}", f"labels.csv row names no DICOM file of the folder ({file!r})")
                return None
            labels[file] = (row.get("label") or "").strip()
            return "a labels.csv row labels a DICOM file of the folder"

        each_row(index, name, table, label_row)
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:
            index.skip(name, path, f"unreadable DICOM header: {type(err).__name__}")
            continue
        modality = _modality(ds)
        if modality and modality not in RADIOGRAPH_MODALITIES:
            accepted = ", ".join(RADIOGRAPH_MODALITIES)
            index.skip(name, path, f"DICOM modality {modality}: not a radiograph ({accepted} accepted)")
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
            patient_id=f"{name}:{getattr(ds, 'PatientID', '') or ''!s}",
            view=str(getattr(ds, "ViewPosition", "") or "PA"),
            sex=sex_code(str(getattr(ds, "PatientSex", ""))),
            age=age,
            paediatric=paediatric_flag(age, rules),
            finding_raw=str(raw),
            label5=label,
            license=spec.get("license", ""),
        )
        if not modality:
            rec.notes.append("DICOM without a Modality tag: taken as a radiograph")
        if keeps_view(index, rec, rules):
            index.records.append(rec)
    return index
