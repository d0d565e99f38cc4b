"""One reader per source format: find the images in the original layout, with metadata.

A reader looks at folder layout and metadata only (no pixel decoding, so indexing a
source of thousands of films takes seconds). It returns one
:class:`~patchcxr.data.records.ImageRecord` per image and a
:class:`~patchcxr.data.records.QuarantineRow` for every file or metadata row that cannot be
used, naming the file and the reason. Decoding, duplicate detection and storage happen later,
shard by shard (:mod:`patchcxr.data.harmonise`).

This module dispatches (:func:`read_source`, :data:`READERS`) and confines every record to
its source's folders; the records, the quarantine rows and the helpers the readers share
are in :mod:`patchcxr.data.records`, the readers in one module per source family:
:mod:`patchcxr.data.readers_segmentation` (``jsrt``, ``scr``, ``montgomery``,
``shenzhen``), :mod:`patchcxr.data.readers_pneumonia` (``kermany``, ``coronahack``,
``cohen``) and :mod:`patchcxr.data.readers_user` (``csv``, ``dicom``).

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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from patchcxr.data.intake import file_table, walk_source
from patchcxr.data.labels import LabelRules
from patchcxr.data.readers_pneumonia import read_cohen, read_coronahack, read_kermany
from patchcxr.data.readers_segmentation import read_jsrt, read_montgomery, read_scr, read_shenzhen
from patchcxr.data.readers_user import read_csv_source, read_dicom_folder
from patchcxr.data.records import (
    LINK_LOOP,
    SourceIndex,
    SourceLayoutError,
    name_problem,
    outside,
    validate_record,
)

#: what each format reads, for the rule that ignores every other file of its folder
LAYOUTS = {
    "jsrt": "JPC[LN]N###.IMG or .IMG.png films",
    "scr": "<organ>/<id>.gif masks",
    "montgomery": "MCUCXR_####_[01] films, their masks and ClinicalReadings/*.txt",
    "shenzhen": "CHNCXR_####_[01] films, their masks and ClinicalReadings/*.txt",
    "kermany": "<split>/NORMAL|PNEUMONIA/*.jpeg films and a CoronaHack CSV",
    "coronahack": "Chest_xray_Corona_Metadata.csv and the films it lists",
    "cohen": "metadata.csv and the films it lists",
    "csv": "the CSV and the films it lists",
    "dicom": "*.dcm, *.dicom or suffix-less DICOM files and labels.csv",
}

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
    for rec in index.records:
        validate_record(rec)
    return index


def _confine(index: SourceIndex, name: str, roots: Sequence[Path], mask_roots: Sequence[Path]) -> None:
    """Every file a record names stays inside its source's folders (``roots`` and
    ``mask_roots``, resolved; symlinks resolved) and has a name a table can hold; any other
    record is a quarantine row, its file unopened."""
    kept = []
    for rec in index.records:
        files = [rec.source_path, *rec.masks.values()]
        problem = next((p for f in files if (p := name_problem(str(f)))), "")
        if problem:
            index.drop(name, rec, problem)
            continue
        escaped = outside(rec.source_path, roots)
        if escaped is None:
            escaped = next((e for m in rec.masks.values() if (e := outside(m, mask_roots)) is not None), None)
        if escaped == LINK_LOOP:
            index.drop(name, rec, "a link loop: not opened")
            continue
        if escaped is not None:
            index.drop(name, rec, f"path leads outside the source folder (to {escaped}): not opened")
            continue
        kept.append(rec)
    index.records = kept


def _unique_stems(index: SourceIndex, name: str) -> None:
    """Two files of one source with one stem (``x.png`` and ``x.jpg``) keep the first."""
    seen: set[str] = set()
    kept = []
    for rec in index.records:
        if rec.stem in seen:
            index.drop(name, rec, f"duplicate image name {rec.stem!r} within the source")
            continue
        seen.add(rec.stem)
        kept.append(rec)
    index.records = kept


def account_source(
    name: str, spec: Mapping[str, Any], index: SourceIndex, display: Callable[[Path], str]
) -> pd.DataFrame:
    """Every entry under the source's folder with its disposition
    (:func:`patchcxr.data.intake.file_table`); an entry that is not a regular file becomes
    a quarantine row of ``index`` here."""
    return file_table(index, name, walk_source(Path(spec["path"])), layout=LAYOUTS[spec["format"]], display=display)
