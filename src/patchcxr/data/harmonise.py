"""Harmonisation: every image stored once, lossless, one channel, bone bright.

Three steps, each a workflow rule so that work is done per source and per shard:

1. :func:`write_index` — a source's :class:`~patchcxr.data.records.SourceIndex` as a TSV
   (no pixels touched; fast).
2. :func:`harmonise_shard` — decode a contiguous block of the index, store each image as
   PNG (8-bit ``L`` or 16-bit ``I;16``, the original bit depth kept) and each set of masks
   as one label map (0 background, 1 heart, 2 left lung, 3 right lung, as the paper's
   segmentation classes, method.md §4), and hash the pixels.
3. :func:`build_manifest` — join the shards, drop exact duplicates (same pixel sha256 in
   two places: the first in configuration order is kept), add ``label4``, validate each
   row (a row that fails is a quarantine row, never a failed manifest), report conflicts
   (``conflicts.tsv``) and account for every file (``intake.tsv``,
   :mod:`patchcxr.data.intake`).

Whatever cannot be used becomes a row of ``quarantine.tsv`` (file, source, reason); the
rest proceeds. With ``strict`` the manifest step fails instead, listing the reasons.
What the content checks accept (:class:`IntakeRules`: blank films, masks' values, geometry
and coverage, the transparent share flattened) is configured under ``data.intake``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from patchcxr.data.cohorts import DUPLICATE
from patchcxr.data.decode import MAX_PIXELS, MAX_TRANSPARENT, DecodeError, decode, open_checked
from patchcxr.data.intake import FILE_COLUMNS, intake_summary
from patchcxr.data.labels import LABEL4, LABEL5, LabelValue, label4_of
from patchcxr.data.records import QuarantineRow, SourceIndex
from patchcxr.io import atomic_write_bytes, encode_png, read_tsv, write_tsv
from patchcxr.shards import n_shards, shard_rows

log = logging.getLogger(__name__)

INDEX_COLUMNS = [
    "stem",
    "source",
    "format",
    "source_path",
    "patient_id",
    "view",
    "sex",
    "age",
    "paediatric",
    "finding_raw",
    "label5",
    "license",
    "masks",
    "notes",
]
MANIFEST_COLUMNS = [
    "image_id",
    "source",
    "format",
    "source_path",
    "patient_id",
    "view",
    "sex",
    "age",
    "paediatric",
    "finding_raw",
    "label5",
    "label4",
    "license",
    "sha256",
    "bit_depth",
    "height",
    "width",
    "orientation",
    "has_lung_mask",
    "has_heart_mask",
    "image_path",
    "mask_path",
    "intake_note",
]
QUARANTINE_COLUMNS = ["file", "source", "reason"]
CONFLICT_COLUMNS = ["source", "kind", "file", "detail", "rule"]
#: the manifest's cell separator of several notes
NOTE_SEPARATOR = "; "


@dataclass(frozen=True)
class IntakeRules:
    """What the content checks accept (config ``data.intake``; the defaults are the
    configuration's).

    Attributes:
        max_pixels: refuse an image or mask with more pixels (``data.max_pixels``).
        max_transparent: share of transparent pixels flattened over black; more is refused.
        min_contrast: a film whose central 99 % of pixel values spans less than this share
            of its full scale is blank or near-constant, and refused.
        mask_intermediate: share of a mask's pixels that may lie between background and
            foreground (the interpolated edges of a resized rendition); more is refused.
        lung_share: the range of the film's area both lungs of a mask may cover.
        min_lung_side: the least share of the film each lung must cover (both lungs present).
        max_heart_share: the largest share of the film a heart mask may cover.
        max_aspect_difference: relative difference of a mask's and its film's aspect ratios
            above which the mask is of another geometry (below it, it is resized).
    """

    max_pixels: int = MAX_PIXELS
    max_transparent: float = MAX_TRANSPARENT
    min_contrast: float = 0.05
    mask_intermediate: float = 0.02
    lung_share: tuple[float, float] = (0.05, 0.8)
    min_lung_side: float = 0.01
    max_heart_share: float = 0.4
    max_aspect_difference: float = 0.02

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> IntakeRules:
        """From the configuration's ``data`` section."""
        intake = dict(data.get("intake", {}))
        if "lung_share" in intake:
            intake["lung_share"] = tuple(intake["lung_share"])
        return cls(max_pixels=int(data.get("max_pixels", MAX_PIXELS)), **intake)


class StrictModeError(RuntimeError):
    """Raised by :func:`build_manifest` in strict mode when anything was quarantined."""


def display_path(path: Path | str) -> str:
    """Relative to the working directory where possible, so manifests do not embed the
    machine's absolute paths."""
    p = Path(path)
    try:
        return os.path.relpath(p) if p.is_absolute() and Path.cwd() in p.parents else str(p)
    except ValueError:
        return str(p)


def write_quarantine(rows: Iterable[QuarantineRow], path: Path | str) -> None:
    """Quarantine rows as a table, each file spelt as the manifest spells paths (relative to
    the working directory where it lies below it)."""
    df = pd.DataFrame([asdict(r) | {"file": display_path(r.file)} for r in rows], columns=QUARANTINE_COLUMNS)
    write_tsv(path, df)


# --------------------------------------------------------------------------- 1. index
def write_index(
    index: SourceIndex,
    index_path: Path | str,
    quarantine_path: Path | str,
    *,
    files: pd.DataFrame | None = None,
    files_path: Path | str | None = None,
    conflicts_path: Path | str | None = None,
) -> None:
    """Write a source's index, its quarantine rows and, when given, its file table
    (:func:`patchcxr.data.intake.file_table`) and its conflicts."""
    rows = []
    for r in index.records:
        rows.append(
            {
                "stem": r.stem,
                "source": r.source,
                "format": r.format,
                "source_path": display_path(r.source_path),
                "patient_id": r.patient_id,
                "view": r.view,
                "sex": r.sex,
                "age": "" if r.age is None else f"{r.age:g}",
                "paediatric": int(r.paediatric),
                "finding_raw": r.finding_raw,
                "label5": r.label5,
                "license": r.license,
                "masks": json.dumps({k: display_path(v) for k, v in sorted(r.masks.items())}),
                "notes": NOTE_SEPARATOR.join(r.notes),
            }
        )
    write_tsv(index_path, pd.DataFrame(rows, columns=INDEX_COLUMNS))
    write_quarantine(index.quarantine, quarantine_path)
    if conflicts_path is not None:
        write_tsv(conflicts_path, pd.DataFrame([asdict(c) for c in index.conflicts], columns=CONFLICT_COLUMNS))
    if files is not None and files_path is not None:
        write_tsv(files_path, files)
        for disposition, n in files["disposition"].value_counts().sort_index().items():
            log.info("files %s: %d", disposition, n)
    for path, counts in index.rows.items():
        log.info(
            "%s: %d rows: %d recorded, %d quarantined, %d ignored %s",
            path,
            counts.total,
            counts.recorded,
            counts.quarantined,
            counts.ignored,
            dict(counts.ignored_rules) or "",
        )
    for c in index.conflicts:
        log.warning("conflict (%s): %s: %s; %s", c.kind, c.file, c.detail, c.rule)
    log.info("indexed %d images, %d quarantined", len(index.records), len(index.quarantine))


def plan_shards(
    index_paths: Sequence[Path | str], names: Sequence[str], shard_size: int, out: Path | str
) -> pd.DataFrame:
    """How many harmonisation jobs each source needs: ``source, images, shards``."""
    rows = []
    for name, path in zip(names, index_paths, strict=True):
        n = len(read_tsv(path))
        rows.append({"source": name, "images": n, "shards": n_shards(n, shard_size) if n else 0})
    df = pd.DataFrame(rows, columns=["source", "images", "shards"])
    write_tsv(out, df)
    log.info("%d images in %d shards of at most %d", df["images"].sum(), df["shards"].sum(), shard_size)
    return df


# --------------------------------------------------------------------------- 2. shards
def pixel_sha256(pixels: np.ndarray) -> str:
    """Hash of the decoded pixels (dtype, shape and values): equal for the same image
    whatever file format or compression it was stored in losslessly."""
    h = hashlib.sha256()
    h.update(f"{pixels.dtype.str}{pixels.shape}".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


class MaskError(DecodeError):
    """A mask refused; ``file`` is the mask file the reason is about."""

    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(reason)
        self.file = file


def _values(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:6])
    return "{" + shown + (", …" if len(values) > 6 else "") + "}"


def _read_mask(
    path: Path,
    shape: tuple[int, int],
    rules: IntakeRules = IntakeRules(),
    *,
    foreground: int = 255,
    rendition: bool = False,
) -> np.ndarray:
    """A binary mask at ``shape``, checked: one frame of an allowed format (decoded as
    safely as an image, :func:`patchcxr.data.decode.open_checked`, EXIF orientation applied
    as to its image); values background 0 and ``foreground`` (a 0/1 mask read as 0/255
    would vanish at the threshold), at most ``rules.mask_intermediate`` of the pixels in
    between (the interpolated edges of a resized rendition; thresholded at half the
    foreground); neither empty nor covering every pixel; the film's aspect ratio unless the
    masks are declared another rendition's (``rendition``: a source's ``masks_path``, whose
    films may have been squashed to a square); nearest-neighbour resize to ``shape``.

    Raises:
        MaskError: naming the mask file and the reason.
    """
    if not path.is_file():
        raise MaskError(path, f"mask file {path} not found")
    try:
        im = open_checked(path, rules.max_pixels)
    except DecodeError as err:
        raise MaskError(path, f"unreadable mask: {err}") from None
    try:
        oriented = ImageOps.exif_transpose(im)
        values = np.asarray(oriented.convert("I") if oriented.mode.startswith("I") else oriented.convert("L"))
    except Exception as err:
        raise MaskError(path, f"unreadable mask: {type(err).__name__}: {err}") from None
    finally:
        im.close()
    found = np.unique(values)
    if found.max() == 0:
        raise MaskError(path, "mask is empty (every pixel 0)")
    if len(found) == 1:
        raise MaskError(path, f"mask covers every pixel of the film (every pixel {int(found[0])})")
    if found.min() != 0 or found.max() != foreground:
        raise MaskError(
            path,
            f"mask values {_values(found)}: expected 0 (background) and {foreground} (organ); "
            "sources.<name>.mask_foreground declares another foreground value",
        )
    between = float(((values > 0) & (values < foreground)).mean())
    if between > rules.mask_intermediate:
        raise MaskError(
            path,
            f"mask is not binary: {100 * between:.1f} % of its pixels lie between 0 and {foreground} "
            f"(over {100 * rules.mask_intermediate:g} %, data.intake.mask_intermediate)",
        )
    binary = values >= foreground / 2  # not all: the value 0 was found above
    height, width = binary.shape
    aspect = abs((width / height) / (shape[1] / shape[0]) - 1)
    if aspect > rules.max_aspect_difference and not rendition:
        raise MaskError(
            path,
            f"mask is {width} × {height}, its film {shape[1]} × {shape[0]}: another geometry (aspect ratios differ "
            f"by {100 * aspect:.1f} %)",
        )
    if binary.shape != shape:
        resized = Image.fromarray(binary.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
        binary = np.asarray(resized) >= 128
    return binary


def label_map(
    masks: dict[str, Path],
    shape: tuple[int, int],
    rules: IntakeRules = IntakeRules(),
    *,
    foreground: int = 255,
    rendition: bool = False,
) -> np.ndarray:
    """One label map from a source's mask files, each checked (:func:`_read_mask`), and the
    whole checked for coverage: both lungs present (each at least ``rules.min_lung_side``
    of the film), the lungs' share within ``rules.lung_share``, the heart's at most
    ``rules.max_heart_share``.

    ``left``/``right`` are the patient's lungs; a combined ``lungs`` mask is split at the
    image's vertical midline (the patient's left lung lies on the image's right).
    The heart wins where it overlaps a lung.

    Raises:
        MaskError: naming the mask file and the reason.
    """
    out = np.zeros(shape, np.uint8)
    read = {
        role: _read_mask(path, shape, rules, foreground=foreground, rendition=rendition)
        for role, path in sorted(masks.items())
    }
    if "lungs" in read:
        both = read["lungs"]
        cols = np.arange(shape[1])[None, :]
        out[both & (cols >= shape[1] / 2)] = LabelValue.LEFT_LUNG
        out[both & (cols < shape[1] / 2)] = LabelValue.RIGHT_LUNG
    if "left" in read:
        out[read["left"]] = LabelValue.LEFT_LUNG
    if "right" in read:
        out[read["right"]] = LabelValue.RIGHT_LUNG
    if "heart" in read:
        heart = float(read["heart"].mean())
        if heart > rules.max_heart_share:
            raise MaskError(
                masks["heart"],
                f"heart mask covers {100 * heart:.0f} % of the film (over {100 * rules.max_heart_share:g} %, "
                "data.intake.max_heart_share)",
            )
        out[read["heart"]] = LabelValue.HEART
    lung_files = [masks[r] for r in ("lungs", "left", "right") if r in masks]
    if lung_files:
        sides = {
            "left": float((out == LabelValue.LEFT_LUNG).mean()),
            "right": float((out == LabelValue.RIGHT_LUNG).mean()),
        }
        for side, share in sides.items():
            if share < rules.min_lung_side:
                file = masks.get(side, lung_files[0])
                raise MaskError(
                    file,
                    f"the {side} lung covers {100 * share:.2f} % of the film (under {100 * rules.min_lung_side:g} %, "
                    "data.intake.min_lung_side): both lungs must be present",
                )
        total = sum(sides.values())
        low, high = rules.lung_share
        if not low <= total <= high:
            raise MaskError(
                lung_files[0],
                f"the lungs cover {100 * total:.1f} % of the film, outside {100 * low:g}-{100 * high:g} % "
                "(data.intake.lung_share)",
            )
    return out


def blank_reason(pixels: np.ndarray, min_contrast: float) -> str:
    """Why a film is blank or near-constant, or ``""``: the central 99 % of its pixel values
    spans less than ``min_contrast`` of its scale, the scale being the bits its largest value
    needs (at least 8: a 12-bit film stored in 16 bits is measured on 12)."""
    sample = pixels[:: max(1, pixels.shape[0] // 256), :: max(1, pixels.shape[1] // 256)]
    low, high = np.percentile(sample, [0.5, 99.5])
    full = (1 << max(8, int(pixels.max()).bit_length())) - 1
    if high - low < min_contrast * full:
        return (
            f"blank or near-constant film: 99 % of its pixels lie within {high - low:g} of {full} levels "
            f"(under {100 * min_contrast:g} %, data.intake.min_contrast)"
        )
    return ""


def harmonise_shard(
    index_path: Path | str,
    shard: int,
    shard_size: int,
    rows_path: Path | str,
    *,
    quarantine_path: Path | str,
    images_dir: Path | str,
    masks_dir: Path | str,
    rules: IntakeRules = IntakeRules(),
    mask_foreground: int = 255,
    mask_rendition: bool = False,
) -> int:
    """Decode and store shard ``shard`` of an index; returns the images stored. A file that
    cannot be decoded safely (:mod:`patchcxr.data.decode`) or is blank is a quarantine row;
    a refused mask is a quarantine row naming the mask (the film stays, without masks);
    nothing a file holds stops the shard. ``mask_foreground`` is the source's organ value,
    ``mask_rendition`` says its masks come from another rendition (``masks_path``)."""
    index = read_tsv(index_path)
    block = shard_rows(index, shard, shard_size)
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    out: list[dict[str, Any]] = []
    bad: list[QuarantineRow] = []
    for i, row in enumerate(block.itertuples(index=False), start=1):
        if i % max(1, len(block) // 5) == 0:
            log.info("shard %d: %d/%d images", shard, i, len(block))
        try:
            img = decode(
                row.source_path, row.format, max_pixels=rules.max_pixels, max_transparent=rules.max_transparent
            )
            blank = blank_reason(img.pixels, rules.min_contrast)
            if blank:
                raise DecodeError(blank)
        except DecodeError as err:
            bad.append(QuarantineRow(row.source_path, row.source, str(err)))
            continue
        except Exception as err:  # anything else is the file's problem too, and stops nothing
            bad.append(QuarantineRow(row.source_path, row.source, f"decoder error: {type(err).__name__}: {err}"))
            continue
        image_path = images_dir / f"{row.stem}.png"
        atomic_write_bytes(image_path, encode_png(img.pixels))
        masks = {k: Path(v) for k, v in json.loads(row.masks).items()}
        mask_path = ""
        has_lung = has_heart = False
        if masks:
            try:
                labels = label_map(masks, img.pixels.shape, rules, foreground=mask_foreground, rendition=mask_rendition)
            except MaskError as err:
                reason = f"mask refused (the film stays, without masks): {err}"
                bad.append(QuarantineRow(display_path(err.file), row.source, reason))
            else:
                has_lung = bool(((labels == LabelValue.LEFT_LUNG) | (labels == LabelValue.RIGHT_LUNG)).any())
                has_heart = bool((labels == LabelValue.HEART).any())
                mask_path = display_path(masks_dir / f"{row.stem}.png")
                atomic_write_bytes(masks_dir / f"{row.stem}.png", encode_png(labels))
        notes = [n for n in (row.notes, img.note) if n]
        out.append(
            {
                "image_id": f"{row.source}/{row.stem}",
                "source": row.source,
                "format": row.format,
                "source_path": row.source_path,
                "patient_id": row.patient_id,
                "view": row.view,
                "sex": row.sex,
                "age": row.age,
                "paediatric": row.paediatric,
                "finding_raw": row.finding_raw,
                "label5": row.label5,
                "label4": label4_of(row.label5),
                "license": row.license,
                "sha256": pixel_sha256(img.pixels),
                "bit_depth": img.bit_depth,
                "height": img.pixels.shape[0],
                "width": img.pixels.shape[1],
                "orientation": img.orientation,
                "has_lung_mask": int(has_lung),
                "has_heart_mask": int(has_heart),
                "image_path": display_path(image_path),
                "mask_path": mask_path,
                "intake_note": NOTE_SEPARATOR.join(notes),
            }
        )
    write_tsv(rows_path, pd.DataFrame(out, columns=MANIFEST_COLUMNS))
    write_quarantine(bad, quarantine_path)
    log.info("shard %d: %d images stored, %d quarantined", shard, len(out), len(bad))
    return len(out)


# --------------------------------------------------------------------------- 3. manifest
def validate_manifest(df: pd.DataFrame) -> None:
    """Check the manifest contract (``workflow/schemas/manifest.schema.yaml`` documents it).

    Raises:
        ValueError: naming the column and the offending rows.
    """
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    problems = []
    if df["image_id"].duplicated().any():
        problems.append(f"duplicate image_id {df.loc[df['image_id'].duplicated(), 'image_id'].tolist()[:5]}")
    bad5 = ~df["label5"].isin((*LABEL5, ""))
    if bad5.any():
        problems.append(f"label5 not in {LABEL5}: {df.loc[bad5, 'label5'].unique().tolist()}")
    bad4 = ~df["label4"].isin((*LABEL4, ""))
    if bad4.any():
        problems.append(f"label4 not in {LABEL4}: {df.loc[bad4, 'label4'].unique().tolist()}")
    if (df["label4"] != df["label5"].map(lambda v: label4_of(v))).any():
        problems.append("label4 disagrees with label5")
    if not df["sha256"].str.fullmatch(r"[0-9a-f]{64}").all():
        problems.append("sha256 is not 64 hex digits")
    for col in ("bit_depth", "height", "width"):
        if (pd.to_numeric(df[col]) <= 0).any():
            problems.append(f"{col} must be positive")
    if not df["patient_id"].astype(bool).all():
        problems.append("empty patient_id")
    if problems:
        raise ValueError("invalid manifest: " + "; ".join(problems))


def _namespace_conflicts(df: pd.DataFrame) -> list[dict[str, str]]:
    """A patient namespace (``<namespace>:<id>``) that two sources share: ids in both are
    taken as the same patient."""
    out = []
    spaces = df.assign(ns=df["patient_id"].str.split(":", n=1).str[0]).groupby("ns")["source"].unique()
    for ns, sources in spaces.items():
        if len(sources) > 1:
            both = df[df["patient_id"].str.startswith(f"{ns}:")].groupby("patient_id")["source"].nunique()
            out.append(
                {
                    "source": ",".join(sorted(sources)),
                    "kind": "shared patient namespace",
                    "file": "",
                    "detail": f"sources {', '.join(sorted(sources))} write patient ids {ns}:…; "
                    f"{int((both > 1).sum())} id(s) occur in more than one of them",
                    "rule": "an id written alike is one patient in every source "
                    "(splits keep the patient's films together)",
                }
            )
    return out


def _label_conflicts(df: pd.DataFrame, dup: pd.Series) -> list[dict[str, str]]:
    """The same pixels under different labels: the first in configuration order is kept."""
    first = df.loc[~dup].set_index("sha256")
    out = []
    for row in df.loc[dup].itertuples(index=False):
        kept = first.loc[row.sha256]
        if row.label5 != kept["label5"]:
            out.append(
                {
                    "source": row.source,
                    "kind": "same pixels, different labels",
                    "file": row.source_path,
                    "detail": f"{row.image_id} says {row.label5 or '(none)'}, {kept['image_id']} says "
                    f"{kept['label5'] or '(none)'}",
                    "rule": f"the first source in configuration order is kept ({kept['image_id']}, "
                    f"{kept['label5'] or '(none)'})",
                }
            )
    return out


def _checked_rows(
    df: pd.DataFrame, row_check: Callable[[dict[str, str]], str] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows ``row_check`` accepts, and a quarantine row for each it does not."""
    if row_check is None or not len(df):
        return df, pd.DataFrame(columns=QUARANTINE_COLUMNS)
    problems = [row_check({k: str(v) for k, v in r.items()}) for r in df.to_dict("records")]
    bad = pd.Series([bool(p) for p in problems], index=df.index)
    rejected = pd.DataFrame(
        {
            "file": df.loc[bad, "source_path"],
            "source": df.loc[bad, "source"],
            "reason": [f"manifest row invalid: {p}" for p in problems if p],
        },
        columns=QUARANTINE_COLUMNS,
    )
    return df.loc[~bad].reset_index(drop=True), rejected


def build_manifest(
    shard_rows_paths: Sequence[Path | str],
    quarantine_paths: Sequence[Path | str],
    manifest_path: Path | str,
    quarantine_out: Path | str,
    *,
    source_order: Sequence[str],
    strict: bool = False,
    row_check: Callable[[dict[str, str]], str] | None = None,
    files: Mapping[str, Path | str] | None = None,
    conflicts_paths: Sequence[Path | str] = (),
    conflicts_out: Path | str | None = None,
    intake_out: Path | str | None = None,
) -> pd.DataFrame:
    """Join shards into ``manifest.tsv`` and every quarantine into ``quarantine.tsv``.

    Args:
        shard_rows_paths: the shards' row TSVs.
        quarantine_paths: index and shard quarantine TSVs.
        manifest_path, quarantine_out: outputs.
        source_order: configuration order of the sources; of duplicate images (same pixel
            sha256) the first in this order is kept.
        strict: fail (without writing the manifest) if anything was quarantined.
        row_check: a row's problem against the manifest schema, or ``""``; a row with a
            problem becomes a quarantine row (the manifest never fails on one row).
        files: each source's file table (:func:`write_index`); with ``intake_out``, the
            per-source accounting is written there, and an unbalanced source is an error.
        conflicts_paths, conflicts_out: the sources' conflicts, joined with those found
            here (the same pixels under two labels, a patient namespace two sources share).

    Raises:
        StrictModeError: ``strict`` and something was quarantined.
        RuntimeError: a source's files or rows do not balance (a defect of the readers).
    """
    frames = [read_tsv(p) for p in shard_rows_paths]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MANIFEST_COLUMNS)
    df = df.reindex(columns=MANIFEST_COLUMNS).fillna("")
    order = {s: i for i, s in enumerate(source_order)}
    df = df.assign(_o=df["source"].map(order).fillna(len(order))).sort_values(["_o", "image_id"], kind="stable")
    df = df.drop(columns="_o").reset_index(drop=True)
    quarantine = [read_tsv(p) for p in quarantine_paths]
    q = pd.concat(quarantine, ignore_index=True) if quarantine else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    df, rejected = _checked_rows(df, row_check)
    q = pd.concat([q, rejected], ignore_index=True)
    dup = df["sha256"].duplicated(keep="first")
    found = _label_conflicts(df, dup) + _namespace_conflicts(df.loc[~dup])
    if dup.any():
        first = df.drop_duplicates("sha256").set_index("sha256")["image_id"]
        extra = pd.DataFrame(
            {
                "file": df.loc[dup, "source_path"],
                "source": df.loc[dup, "source"],
                "reason": [f"{DUPLICATE}{first[h]}" for h in df.loc[dup, "sha256"]],
            }
        )
        q = pd.concat([q, extra], ignore_index=True)
        df = df.loc[~dup].reset_index(drop=True)
    q = q.reindex(columns=QUARANTINE_COLUMNS).sort_values(["source", "file", "reason"], kind="stable")
    if strict and len(q):
        reasons = "\n".join(f"  {r.source}: {r.file}: {r.reason}" for r in q.itertuples())
        raise StrictModeError(f"strict mode: {len(q)} file(s) could not be used:\n{reasons}")
    validate_manifest(df)
    if files is not None and intake_out is not None:
        tables = {s: read_tsv(p).reindex(columns=FILE_COLUMNS).fillna("") for s, p in files.items()}
        intake = intake_summary(tables, df)
        write_tsv(intake_out, intake)
        for r in intake.itertuples(index=False):
            log.info(
                "%s: %d files = %d in the manifest (%d images, %d masks, %d metadata) + %d quarantined + %d ignored; "
                "%d metadata rows = %d recorded + %d quarantined + %d ignored",
                r.source, r.files, r.in_manifest, r.images, r.masks, r.metadata, r.quarantined, r.ignored,
                r.rows, r.rows_recorded, r.rows_quarantined, r.rows_ignored,
            )  # fmt: skip
        unbalanced = intake.loc[intake["balanced"] != 1, "source"].tolist()
        if unbalanced:
            raise RuntimeError(f"intake accounting does not balance for {unbalanced}: see {intake_out}")
    if conflicts_out is not None:
        for c in found:  # each source's own were logged when it was indexed
            log.warning("conflict (%s): %s %s; %s", c["kind"], c["file"], c["detail"], c["rule"])
        table = pd.concat(
            [*(read_tsv(p) for p in conflicts_paths), pd.DataFrame(found, columns=CONFLICT_COLUMNS)], ignore_index=True
        )
        write_tsv(conflicts_out, table.reindex(columns=CONFLICT_COLUMNS).fillna(""))
    write_tsv(manifest_path, df)
    write_tsv(quarantine_out, q)
    log.info("manifest: %d images from %d sources; %d quarantined", len(df), df["source"].nunique(), len(q))
    return df
