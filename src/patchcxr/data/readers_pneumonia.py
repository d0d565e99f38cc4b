"""Readers of the pneumonia and COVID-19 collections (method.md §2): Kermany's paediatric
films (``kermany``: label and patient from the file name, a CoronaHack CSV beside the tree
cross-checked), CoronaHack (``coronahack``: flat folders and its metadata CSV) and Cohen's
COVID-19 collection (``cohen``: ``metadata.csv`` and the images it lists). Each returns a
:class:`~patchcxr.data.records.SourceIndex`; :func:`patchcxr.data.readers.read_source`
dispatches to them."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchcxr.data.labels import LabelRules
from patchcxr.data.records import (
    IMAGE_SUFFIXES,
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

# --------------------------------------------------------------------------- Kermany / CoronaHack
KERMANY_NAME = re.compile(
    r"^(?:(?P<n2>NORMAL2-)?IM-(?P<im>\d+)(?:-\d+)+|person(?P<person>\d+)_(?P<kind>bacteria|virus)_\d+)$", re.IGNORECASE
)
CORONAHACK_CSV = "Chest_xray_Corona_Metadata.csv"


def _kermany_identity(stem: str) -> tuple[str, str] | None:
    """(patient id, label5) from a Kermany file name, or None if it is not one."""
    m = KERMANY_NAME.match(stem)
    if not m:
        return None
    if m.group("person"):
        return f"kermany:person{int(m.group('person'))}", "bacterial" if m.group(
            "kind"
        ).lower() == "bacteria" else "viral"
    return f"kermany:{'NORMAL2-' if m.group('n2') else ''}IM-{int(m.group('im')):04d}", "normal"


def _coronahack_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _coronahack_label(row: Mapping[str, str], rules: LabelRules) -> tuple[str, str | None]:
    if row.get("Label", "").strip().lower() == "normal":
        return "normal", None
    specific = (row.get("Label_2_Virus_category") or "").strip()
    if specific:
        return rules.classify(specific)
    return rules.classify((row.get("Label_1_Virus_category") or "").strip() or "Pnemonia")


def read_kermany(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    images = [
        p
        for p in source_files(root, "*")
        if p.suffix.lower() in (".jpeg", ".jpg", ".png") and p.parent.name.upper() in ("NORMAL", "PNEUMONIA")
    ]
    if not images:
        raise SourceLayoutError(f"{name}: no chest_xray/<split>/NORMAL|PNEUMONIA/ images under {root}")
    by_name = {p.name: p for p in images}
    for path in images:
        ident = _kermany_identity(path.stem)
        if ident is None and path.parent.name.upper() == "NORMAL":
            # a file of the NORMAL folder with a non-Kermany name (CoronaHack added a few
            # adult films): the folder is the label, the file its own patient
            ident = (f"kermany:{path.stem}", "normal")
        if ident is None:
            index.skip(name, path, "unknown label: file name is not a Kermany name (IM-…, person…_bacteria|virus_…)")
            continue
        patient, label = ident
        if (path.parent.name.upper() == "NORMAL") != (label == "normal"):
            index.skip(name, path, f"label conflict: file name says {label}, folder says {path.parent.name}")
            continue
        index.records.append(
            ImageRecord(
                name,
                "kermany",
                path.stem,
                path,
                patient_id=patient,
                paediatric=True,
                finding_raw=path.parent.name,
                label5=label,
                license="CC BY 4.0",
            )
        )
    # a CoronaHack CSV beside the tree: every row must have its image
    for csv_path in source_files(root, CORONAHACK_CSV):
        for row in _coronahack_rows(csv_path):
            image_name = row.get("X_ray_image_name", "")
            if image_name and image_name not in by_name:
                index.skip(name, f"{csv_path}:{image_name}", "metadata row whose image is missing")
    return index


def read_coronahack(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    csvs = source_files(root, CORONAHACK_CSV)
    if not csvs:
        raise SourceLayoutError(f"{name}: no {CORONAHACK_CSV} under {root}")
    files = {p.name: p for p in source_files(root, "*") if p.suffix.lower() in IMAGE_SUFFIXES}
    for row in _coronahack_rows(csvs[0]):
        image_name = row.get("X_ray_image_name", "").strip()
        path = files.get(image_name)
        if path is None:
            index.skip(name, f"{csvs[0]}:{image_name}", "metadata row whose image is missing")
            continue
        label, reason = _coronahack_label(row, rules)
        if reason:
            index.skip(name, path, reason)
            continue
        ident = _kermany_identity(path.stem)
        patient = ident[0] if ident else f"coronahack:{path.stem}"
        index.records.append(
            ImageRecord(
                name,
                "coronahack",
                path.stem,
                path,
                patient_id=patient,
                paediatric=ident is not None,  # the Kermany images are children's
                finding_raw=" / ".join(
                    v
                    for v in (
                        row.get("Label", ""),
                        row.get("Label_1_Virus_category", ""),
                        row.get("Label_2_Virus_category", ""),
                    )
                    if v
                ),
                label5=label,
                license="CC BY 4.0",
            )
        )
    return index


# --------------------------------------------------------------------------- Cohen
def read_cohen(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    metas = source_files(root, "metadata.csv")
    if not metas:
        raise SourceLayoutError(f"{name}: no metadata.csv under {root}")
    meta = metas[0]
    real_root = root.resolve()
    with open(meta, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    listed: dict[Path, str] = {}
    for row in rows:
        filename = (row.get("filename") or "").strip()
        path = meta.parent / (row.get("folder") or "images").strip() / filename
        if filename and path in listed:
            index.skip(name, path, f"metadata row repeats an image already listed for patient {listed[path]}")
            continue
        listed[path] = (row.get("patientid") or "").strip()
        escaped = outside(path, [real_root])
        if filename and escaped is not None:
            index.skip(name, path, leaves_source(escaped))
            continue
        modality = (row.get("modality") or "X-ray").strip()
        if modality.lower() not in ("x-ray", "xray", "cr", "dx"):
            index.skip(name, path, f"excluded modality {modality!r}")
            continue
        if not filename or not path.is_file():
            index.skip(name, path, "metadata row whose image is missing")
            continue
        age = age_years(row.get("age", "")) if (row.get("age") or "").strip() else None
        rec = ImageRecord(
            name,
            "cohen",
            path.stem,
            path,
            patient_id=f"cohen:{(row.get('patientid') or path.stem).strip()}",
            view=(row.get("view") or "").strip(),
            sex=sex_code(row.get("sex", "")),
            age=age,
            paediatric=paediatric_flag(age, rules),
            finding_raw=(row.get("finding") or "").strip(),
            license=(row.get("license") or "").strip(),
        )
        if not keeps_view(index, rec, rules):
            continue
        rec.label5, reason = rules.classify(rec.finding_raw)
        if reason:
            index.skip(name, path, reason)
            continue
        index.records.append(rec)
    return index
