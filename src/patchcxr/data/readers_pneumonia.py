"""Readers of the pneumonia and COVID-19 collections (method.md §2): Kermany's paediatric
films (``kermany``: label and patient from the file name, a CoronaHack CSV beside the tree
cross-checked), CoronaHack (``coronahack``: flat folders and its metadata CSV) and Cohen's
COVID-19 collection (``cohen``: ``metadata.csv`` and the images it lists). Each returns a
:class:`~patchcxr.data.records.SourceIndex`; :func:`patchcxr.data.readers.read_source`
dispatches to them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchcxr.data.intake import each_row, one_metadata_file, read_table
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


CORONAHACK_COLUMNS = ("X_ray_image_name", "Label")


def _coronahack_label(row: Mapping[str, str], rules: LabelRules) -> tuple[str, str | None]:
    if row.get("Label", "").strip().lower() == "normal":
        return "normal", None
    specific = (row.get("Label_2_Virus_category") or "").strip()
    if specific:
        return rules.classify(specific)
    return rules.classify((row.get("Label_1_Virus_category") or "").strip() or "Pnemonia")


#: Kermany's label folders: the folder is the label
LABEL_FOLDERS = ("NORMAL", "PNEUMONIA")


def _label_folder(path: Path, root: Path) -> str:
    """The name of the folder that holds ``path`` (its label folder in Kermany's layout)."""
    return path.parent.name if path.parent != root else ""


def read_kermany(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    films = [p for p in source_files(root, "*") if p.suffix.lower() in (".jpeg", ".jpg", ".png")]
    images = []
    for path in films:
        folder = _label_folder(path, root)
        if folder in LABEL_FOLDERS:
            images.append(path)
            continue
        near = folder.strip().upper()
        hint = f" (it differs from {near} by case or white space)" if near in LABEL_FOLDERS else ""
        index.skip(name, path, f"label folder {folder!r} is not NORMAL or PNEUMONIA{hint}: label unknown")
    if not images:
        raise SourceLayoutError(f"{name}: no chest_xray/<split>/NORMAL|PNEUMONIA/ images under {root}")
    by_name = {p.name: p for p in films}
    for path in images:
        ident = _kermany_identity(path.stem)
        if ident is None and path.parent.name == "NORMAL":
            # a file of the NORMAL folder with a non-Kermany name (CoronaHack added a few
            # adult films): the folder is the label, the file its own patient
            ident = (f"kermany:{path.stem}", "normal")
        if ident is None:
            index.skip(name, path, "unknown label: file name is not a Kermany name (IM-…, person…_bacteria|virus_…)")
            continue
        patient, label = ident
        if (path.parent.name == "NORMAL") != (label == "normal"):
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
    # a CoronaHack CSV beside the tree: every row must have its image, and its label must
    # agree with the film's folder (the folder decides)
    folder_of = {r.source_path.name: r.source_path.parent.name for r in index.records}
    for csv_path in source_files(root, CORONAHACK_CSV):
        try:
            table = read_table(csv_path, CORONAHACK_COLUMNS, name)
        except SourceLayoutError as err:  # a cross-check only: the tree's folders are the labels
            index.skip(name, csv_path, f"CoronaHack CSV not used for the cross-check: {err}")
            continue
        index.metadata[str(csv_path)] = table.note

        def cross_check(line: int, row: Mapping[str, str], csv_path: Path = csv_path) -> str | None:
            image_name = (row.get("X_ray_image_name") or "").strip()
            if image_name not in by_name:
                index.skip(name, f"{csv_path}:{image_name}", "metadata row whose image is missing")
                return None
            said = (row.get("Label") or "").strip()
            folder = folder_of.get(image_name)
            if folder is None:
                return "a CoronaHack row of a film the tree quarantined"
            if (said.lower() == "normal") != (folder == "NORMAL"):
                index.conflict(
                    name,
                    "CSV label against folder",
                    by_name[image_name],
                    detail=f"{CORONAHACK_CSV} line {line} says {said!r}, the folder says {folder}",
                    rule="the folder decides (Kermany's layout is the label)",
                )
            return "a CoronaHack row cross-checks a film of the tree (the folder is the label)"

        each_row(index, name, table, cross_check)
    return index


def read_coronahack(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    meta = one_metadata_file(source_files(root, CORONAHACK_CSV), CORONAHACK_CSV, name, root)
    table = read_table(meta, CORONAHACK_COLUMNS, name)
    index.metadata[str(meta)] = table.note
    files = {p.name: p for p in source_files(root, "*") if p.suffix.lower() in IMAGE_SUFFIXES}

    def row_of(line: int, row: Mapping[str, str]) -> str | None:
        image_name = (row.get("X_ray_image_name") or "").strip()
        path = files.get(image_name)
        if path is None:
            index.skip(name, f"{meta}:{image_name}", "metadata row whose image is missing")
            return None
        label, reason = _coronahack_label(row, rules)
        if reason:
            index.skip(name, path, reason)
            return None
        ident = _kermany_identity(path.stem)
        if ident is not None and (ident[1] == "normal") != (label == "normal"):
            index.conflict(
                name,
                "CSV label against file name",
                path,
                detail=f"{CORONAHACK_CSV} line {line} says {label}, the Kermany file name says {ident[1]}",
                rule="the CSV decides (CoronaHack's layout is the CSV)",
            )
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
        return None

    each_row(index, name, table, row_of)
    return index


# --------------------------------------------------------------------------- Cohen
COHEN_COLUMNS = ("filename", "finding")


def read_cohen(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    meta = one_metadata_file(source_files(root, "metadata.csv"), "metadata.csv", name, root)
    table = read_table(meta, COHEN_COLUMNS, name)
    index.metadata[str(meta)] = table.note
    real_root = root.resolve()
    listed: dict[Path, str] = {}

    def row_of(line: int, row: Mapping[str, str]) -> str | None:
        filename = (row.get("filename") or "").strip()
        path = meta.parent / (row.get("folder") or "images").strip() / filename
        if not filename:
            index.skip(name, f"{meta}:{line}", "metadata row without a file name")
            return None
        if path in listed:
            index.skip(name, path, f"metadata row {line} repeats an image already listed for patient {listed[path]}")
            return None
        listed[path] = (row.get("patientid") or "").strip()
        escaped = outside(path, [real_root])
        if escaped is not None:
            index.skip(name, path, leaves_source(escaped))
            return None
        modality = (row.get("modality") or "X-ray").strip()
        if modality.lower() not in ("x-ray", "xray", "cr", "dx"):
            index.skip(name, path, f"excluded modality {modality!r}")
            return None
        if not path.is_file():
            index.skip(name, path, f"metadata row whose image is missing (line {line})")
            return None
        age = age_years(row.get("age", "")) if (row.get("age") or "").strip() else None
        rec = ImageRecord(
            name,
            "cohen",
            path.stem,
            path,
            patient_id=f"cohen:{(row.get('patientid') or '').strip()}",
            view=(row.get("view") or "").strip(),
            sex=sex_code(row.get("sex", "")),
            age=age,
            paediatric=paediatric_flag(age, rules),
            finding_raw=(row.get("finding") or "").strip(),
            license=(row.get("license") or "").strip(),
        )
        if not keeps_view(index, rec, rules):
            return None
        rec.label5, reason = rules.classify(rec.finding_raw)
        if reason:
            index.skip(name, path, reason)
            return None
        index.records.append(rec)
        return None

    each_row(index, name, table, row_of)
    return index
