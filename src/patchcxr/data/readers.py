"""One reader per source format: find the images in the original layout, with metadata.

A reader looks at folder layout and metadata only (no pixel decoding, so indexing a
source of thousands of films takes seconds). It returns one :class:`ImageRecord` per
image and a :class:`QuarantineRow` for every file or metadata row that cannot be used,
naming the file and the reason. Decoding, duplicate detection and storage happen later,
shard by shard (:mod:`patchcxr.data.harmonise`).

Formats and the layouts they understand (method.md §2, and the
renditions held in the development sample):

``jsrt``        ``**/JPC[LN]N###.IMG`` (raw) or ``**/JPC[LN]N###.IMG.png`` (8-bit palette
                conversions); lung and heart masks from an SCR tree (option ``masks``)
``scr``         mask trees only (``[fold*/]masks/<organ>/<id>.gif``); used through ``jsrt``
``montgomery``  ``**/CXR_png/MCUCXR_####_{0,1}.{png,jpg}``; masks from
                ``ManualMask/{leftMask,rightMask}/`` or a folder of combined masks
                (``masks/`` or option ``masks_path``); ``ClinicalReadings/*.txt``
``shenzhen``    ``**/CXR_png/CHNCXR_####_{0,1}.png``; masks ``**/mask/*_mask.png``;
                ``ClinicalReadings/*.txt``
``kermany``     ``chest_xray/{train,test,val}/{NORMAL,PNEUMONIA}/*.jpeg`` (label and
                patient from the name); a CoronaHack CSV beside it is cross-checked
``coronahack``  flat ``{train,test}/`` folders + ``Chest_xray_Corona_Metadata.csv``
``cohen``       ``metadata.csv`` + ``<folder>/<filename>``
``csv``         a user's CSV: ``path,label[,patient_id,view,sex,age]``
``dicom``       a folder of DICOM files (label from option ``label`` or a ``labels.csv``)
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchcxr.data.labels import LABEL5, LabelRules

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff")
SCR_ORGANS = {"heart": "heart", "left lung": "left", "right lung": "right"}


@dataclass
class ImageRecord:
    """One image found in a source, before decoding.

    ``masks`` maps a role to a mask file: ``left``/``right`` (one lung each), ``lungs``
    (both lungs in one file) and ``heart``.
    """

    source: str
    format: str
    stem: str
    source_path: Path
    patient_id: str = ""
    view: str = "PA"
    sex: str = ""
    age: float | None = None
    paediatric: bool = False
    finding_raw: str = ""
    label5: str = ""
    license: str = ""
    masks: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class QuarantineRow:
    """A file (or metadata row) left out, and why."""

    file: str
    source: str
    reason: str


@dataclass
class SourceIndex:
    records: list[ImageRecord] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)

    def skip(self, source: str, file: Path | str, reason: str) -> None:
        self.quarantine.append(QuarantineRow(printable(str(file)), source, reason))


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name) escaped as ``\\xNN``:
    one table row per file, whatever its name."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)


def outside(path: Path, roots: Sequence[Path]) -> Path | None:
    """Where ``path`` really leads (symlinks and ``..`` resolved) when that is outside every
    folder of ``roots`` (resolved already: they are resolved once per source), else ``None``."""
    real = path.resolve()
    return None if any(real == root or root in real.parents for root in roots) else real


def _leaves_source(escaped: Path) -> str:
    """The quarantine reason of a metadata path that leads out of its source folder."""
    return f"metadata path leads outside the source folder (to {escaped}): not opened"


class SourceLayoutError(FileNotFoundError):
    """The source folder does not hold the layout its format expects."""


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file() and not p.name.startswith("."))


def _age(text: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)", str(text))
    return float(m.group(1)) if m else None


def _sex(text: str) -> str:
    t = str(text).strip().upper()
    return {"MALE": "M", "FEMALE": "F", "M": "M", "F": "F", "O": "O"}.get(t, "")


def _keep_view(index: SourceIndex, rec: ImageRecord, rules: LabelRules) -> bool:
    if rules.view_excluded(rec.view):
        index.skip(rec.source, rec.source_path, f"excluded view {rec.view!r} (labels.exclude_views)")
        return False
    return True


def _paediatric(age: float | None, rules: LabelRules) -> bool:
    return age is not None and age < rules.paediatric_age


# --------------------------------------------------------------------------- JSRT / SCR
def _scr_masks(scr_root: Path | None) -> dict[str, dict[str, Path]]:
    """Case id → {left, right, heart} GIFs of an SCR tree (folds or flat)."""
    out: dict[str, dict[str, Path]] = {}
    if scr_root is None:
        return out
    for organ, role in SCR_ORGANS.items():
        for gif in _files(scr_root, f"*/{organ}/*.gif"):
            out.setdefault(gif.stem.upper(), {})[role] = gif
    return out


def _must_match(pattern: re.Pattern[str], name: str) -> re.Match[str]:
    """The match of a file name already selected by ``pattern``."""
    m = pattern.search(name)
    if m is None:
        raise ValueError(f"{name!r} does not match {pattern.pattern!r}")
    return m


def read_jsrt(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    masks = _scr_masks(Path(spec["masks"]) if spec.get("masks") else None)
    pattern = re.compile(r"(JPC[LN]N\d{3})\.IMG(\.png)?$", re.IGNORECASE)
    files = [p for p in _files(root, "*") if pattern.search(p.name)]
    if not files:
        raise SourceLayoutError(f"{name}: no JPCNN###.IMG / JPCLN###.IMG files under {root}")
    for path in files:
        case = _must_match(pattern, path.name).group(1).upper()
        nodule = case.startswith("JPCLN")
        rec = ImageRecord(
            name,
            "jsrt",
            case,
            path,
            patient_id=f"jsrt:{case}",
            finding_raw="nodule" if nodule else "non-nodule",
            # nodule films serve segmentation only; non-nodule films are normal (§2.3)
            label5="" if nodule else "normal",
            license="JSRT terms (registration; no redistribution)",
            masks=dict(masks.get(case, {})),
        )
        if spec.get("masks") and not rec.masks:
            index.skip(name, path, f"missing mask: no SCR masks for {case} under {spec['masks']}")
        elif rec.masks and len(rec.masks) < len(SCR_ORGANS):
            # a partial set would give a label map with an organ silently absent: the image
            # stays (for classification), without masks, and the gap is reported
            lacking = sorted(organ for organ, role in SCR_ORGANS.items() if role not in rec.masks)
            index.skip(name, path, f"missing mask: SCR lacks the {', '.join(lacking)} mask for {case}")
            rec.masks = {}
        index.records.append(rec)
    return index


def read_scr(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    """SCR holds masks only; its images are the JSRT films (see ``jsrt`` option ``masks``)."""
    if not _scr_masks(root):
        raise SourceLayoutError(f"{name}: no SCR masks (<organ>/<id>.gif) under {root}")
    return SourceIndex()


# --------------------------------------------------------------------------- NLM
def _clinical(path: Path) -> tuple[str, float | None, str]:
    """(sex, age, reading) from an NLM ClinicalReadings file (Montgomery or Shenzhen style)."""
    if not path.is_file():
        return "", None, ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    sex, age, rest = "", None, []
    for ln in lines:
        if ln.lower().startswith("patient's sex"):
            sex = _sex(ln.split(":", 1)[1])
        elif ln.lower().startswith("patient's age"):
            age = _age(ln.split(":", 1)[1])
        elif m := re.fullmatch(r"(male|female)\s*,?\s*(\d+)\s*yrs?.*", ln, re.IGNORECASE):
            sex, age = _sex(m.group(1)), float(m.group(2))
        else:
            rest.append(ln)
    return sex, age, " ".join(rest)


def _mask_dirs(root: Path, spec: Mapping[str, Any]) -> list[Path]:
    dirs = [Path(spec["masks_path"])] if spec.get("masks_path") else []
    return [*dirs, root]


def read_nlm(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules, *, prefix: str) -> SourceIndex:
    index = SourceIndex()
    pattern = re.compile(rf"({prefix}_(\d{{4}})_([01]))\.(png|jpe?g)$", re.IGNORECASE)
    # images are the matching files outside any *mask* folder (masks share the image names)
    images = [
        p
        for p in _files(root, "*")
        if pattern.search(p.name) and not any("mask" in part.lower() for part in p.relative_to(root).parts)
    ]
    if not images:
        mask_files = [p for p in _files(root, "*") if pattern.search(p.name)]
        if mask_files:
            raise SourceLayoutError(
                f"{name}: {root} holds {len(mask_files)} {prefix}_####_[01] mask files but no images (files of those "
                f"names outside a *mask* folder): set sources.{name}.path to the folder above the images "
                "(CXR_png/), and masks_path to the masks if they lie elsewhere"
            )
        raise SourceLayoutError(f"{name}: no {prefix}_####_[01] images under {root}")
    # masks: NLM separate left/right, combined per image, or Kaggle-style *_mask.png;
    # Montgomery ships a mask for every film, the Shenzhen masks cover a subset
    required = bool(spec.get("masks_required", prefix == "MCUCXR"))
    found: dict[str, dict[str, Path]] = {}
    for base in _mask_dirs(root, spec):
        for p in _files(base, "*.png") + _files(base, "*.gif"):
            m = re.fullmatch(rf"({prefix}_\d{{4}}_[01])(_mask)?", p.stem, re.IGNORECASE)
            if not m:
                continue
            parent = p.parent.name.lower()
            case = m.group(1).upper()
            if parent == "leftmask":
                found.setdefault(case, {}).setdefault("left", p)
            elif parent == "rightmask":
                found.setdefault(case, {}).setdefault("right", p)
            elif m.group(2) or parent in ("mask", "masks"):
                found.setdefault(case, {}).setdefault("lungs", p)
    for path in images:
        m = _must_match(pattern, path.name)
        case, number, flag = m.group(1).upper(), m.group(2), m.group(3)
        sex, age, reading = _clinical(path.parent.parent / "ClinicalReadings" / f"{case}.txt")
        label = "tb" if flag == "1" else "normal"  # the NLM suffix is the class
        masks = found.get(case, {})
        if "left" in masks and "right" in masks:
            masks = {"left": masks["left"], "right": masks["right"]}
        elif ("left" in masks) != ("right" in masks):
            index.skip(name, path, "missing mask: only one of leftMask/rightMask exists")
            masks = {}
        elif not masks and required:
            # the image stays usable (for classification); its absent mask is reported
            index.skip(name, path, "missing mask: no lung mask file for this image")
        rec = ImageRecord(
            name,
            spec["format"],
            case,
            path,
            patient_id=f"{spec['format']}:{prefix}_{number}",
            sex=sex,
            age=age,
            paediatric=_paediatric(age, rules),
            finding_raw=reading or label,
            label5=label,
            license="NLM terms (do not share outside the research group)",
            masks=masks,
        )
        index.records.append(rec)
    return index


def read_montgomery(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    return read_nlm(name, root, spec, rules, prefix="MCUCXR")


def read_shenzhen(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    return read_nlm(name, root, spec, rules, prefix="CHNCXR")


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
        for p in _files(root, "*")
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
    for csv_path in _files(root, CORONAHACK_CSV):
        for row in _coronahack_rows(csv_path):
            image_name = row.get("X_ray_image_name", "")
            if image_name and image_name not in by_name:
                index.skip(name, f"{csv_path}:{image_name}", "metadata row whose image is missing")
    return index


def read_coronahack(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    csvs = _files(root, CORONAHACK_CSV)
    if not csvs:
        raise SourceLayoutError(f"{name}: no {CORONAHACK_CSV} under {root}")
    files = {p.name: p for p in _files(root, "*") if p.suffix.lower() in IMAGE_SUFFIXES}
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
    metas = _files(root, "metadata.csv")
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
            index.skip(name, path, _leaves_source(escaped))
            continue
        modality = (row.get("modality") or "X-ray").strip()
        if modality.lower() not in ("x-ray", "xray", "cr", "dx"):
            index.skip(name, path, f"excluded modality {modality!r}")
            continue
        if not filename or not path.is_file():
            index.skip(name, path, "metadata row whose image is missing")
            continue
        age = _age(row.get("age", "")) if (row.get("age") or "").strip() else None
        rec = ImageRecord(
            name,
            "cohen",
            path.stem,
            path,
            patient_id=f"cohen:{(row.get('patientid') or path.stem).strip()}",
            view=(row.get("view") or "").strip(),
            sex=_sex(row.get("sex", "")),
            age=age,
            paediatric=_paediatric(age, rules),
            finding_raw=(row.get("finding") or "").strip(),
            license=(row.get("license") or "").strip(),
        )
        if not _keep_view(index, rec, rules):
            continue
        rec.label5, reason = rules.classify(rec.finding_raw)
        if reason:
            index.skip(name, path, reason)
            continue
        index.records.append(rec)
    return index


# --------------------------------------------------------------------------- user data
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
                index.skip(name, path, _leaves_source(escaped))
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
            age = _age(row["age"]) if (row.get("age") or "").strip() else None
            rec = ImageRecord(
                name,
                "csv",
                path.stem,
                path,
                patient_id=f"{name}:{(row.get('patient_id') or path.stem).strip()}",
                view=(row.get("view") or "PA").strip(),
                sex=_sex(row.get("sex", "")),
                age=age,
                paediatric=_paediatric(age, rules),
                finding_raw=label,
                label5=label,
                license=spec.get("license", ""),
            )
            if _keep_view(index, rec, rules):
                index.records.append(rec)
    return index


def read_dicom_folder(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    import pydicom

    index = SourceIndex()
    labels: dict[str, str] = {}
    if (root / "labels.csv").is_file():
        with open(root / "labels.csv", newline="") as fh:
            labels = {r["file"]: r["label"] for r in csv.DictReader(fh)}
    files = [p for p in _files(root, "*") if p.suffix.lower() in (".dcm", ".dicom", "")]
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
        age = _age(str(getattr(ds, "PatientAge", ""))) if getattr(ds, "PatientAge", "") else None
        rec = ImageRecord(
            name,
            "dicom",
            path.stem,
            path,
            patient_id=f"{name}:{getattr(ds, 'PatientID', path.stem)}",
            view=str(getattr(ds, "ViewPosition", "") or "PA"),
            sex=_sex(str(getattr(ds, "PatientSex", ""))),
            age=age,
            paediatric=_paediatric(age, rules),
            finding_raw=str(raw),
            label5=label,
            license=spec.get("license", ""),
        )
        if _keep_view(index, rec, rules):
            index.records.append(rec)
    if not files:
        raise SourceLayoutError(f"{name}: no DICOM files under {root}")
    return index


Reader = Callable[[str, Path, Mapping[str, Any], LabelRules], SourceIndex]
READERS: dict[str, Reader] = {
    "jsrt": read_jsrt,
    "scr": read_scr,
    "montgomery": read_montgomery,
    "shenzhen": read_shenzhen,
    "kermany": read_kermany,
    "coronahack": read_coronahack,
    "cohen": read_cohen,
    "csv": read_csv_source,
    "dicom": read_dicom_folder,
}


def read_source(name: str, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    """Index source ``name`` (a ``sources:`` entry with ``format`` and a resolved ``path``).

    Raises:
        SourceLayoutError: the folder is missing or holds nothing of the format.
    """
    root = Path(spec["path"])
    if not root.is_dir():
        raise SourceLayoutError(f"{name}: source folder {root} does not exist")
    fmt = spec["format"]
    if fmt not in READERS:
        raise ValueError(f"{name}: unknown format {fmt!r}; expected one of {', '.join(READERS)}")
    index = READERS[fmt](name, root, {**spec, "format": fmt}, rules)
    roots = [root.resolve()]
    mask_roots = roots + [Path(spec[k]).resolve() for k in ("masks_path", "masks") if spec.get(k)]
    _confine(index, name, roots, mask_roots)
    _unique_stems(index, name)
    return index


def _confine(index: SourceIndex, name: str, roots: Sequence[Path], mask_roots: Sequence[Path]) -> None:
    """Every file a record names stays inside its source's folders (``roots`` and
    ``mask_roots``, resolved; symlinks resolved) and has a name a table can hold; any other
    record is a quarantine row, its file unopened."""
    kept = []
    for rec in index.records:
        files = [rec.source_path, *rec.masks.values()]
        if any(printable(str(f)) != str(f) for f in files):
            index.skip(name, rec.source_path, "file name holds control characters (a newline?): rename the file")
            continue
        escaped = outside(rec.source_path, roots)
        if escaped is None:
            escaped = next((e for m in rec.masks.values() if (e := outside(m, mask_roots)) is not None), None)
        if escaped is not None:
            index.skip(name, rec.source_path, f"path leads outside the source folder (to {escaped}): not opened")
            continue
        kept.append(rec)
    index.records = kept


def _unique_stems(index: SourceIndex, name: str) -> None:
    """Two files of one source with one stem (``x.png`` and ``x.jpg``) keep the first."""
    seen: set[str] = set()
    kept = []
    for rec in index.records:
        if rec.stem in seen:
            index.skip(name, rec.source_path, f"duplicate image name {rec.stem!r} within the source")
            continue
        seen.add(rec.stem)
        kept.append(rec)
    index.records = kept
