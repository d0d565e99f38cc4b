"""Harmonisation: every image stored once, lossless, one channel, bone bright.

Three steps, each a workflow rule so that work is done per source and per shard:

1. :func:`write_index` — a source's :class:`~patchcxr.data.records.SourceIndex` as a TSV
   (no pixels touched; fast).
2. :func:`harmonise_shard` — decode a contiguous block of the index, store each image as
   PNG (8-bit ``L`` or 16-bit ``I;16``, the original bit depth kept) and each set of masks
   as one label map (0 background, 1 heart, 2 left lung, 3 right lung, as the paper's
   segmentation classes, method.md §4), and hash the pixels.
3. :func:`build_manifest` — join the shards, drop exact duplicates (same pixel sha256 in
   two places: the first in configuration order is kept), add ``label4``, validate.

Whatever cannot be used becomes a row of ``quarantine.tsv`` (file, source, reason); the
rest proceeds. With ``strict`` the manifest step fails instead, listing the reasons.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from patchcxr.data.cohorts import DUPLICATE
from patchcxr.data.decode import MAX_PIXELS, DecodeError, decode, open_checked
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
]
QUARANTINE_COLUMNS = ["file", "source", "reason"]


class StrictModeError(RuntimeError):
    """Raised by :func:`build_manifest` in strict mode when anything was quarantined."""


def _display_path(path: Path | str) -> str:
    """Relative to the working directory where possible, so manifests do not embed the
    machine's absolute paths."""
    p = Path(path)
    try:
        return os.path.relpath(p) if p.is_absolute() and Path.cwd() in p.parents else str(p)
    except ValueError:
        return str(p)


def write_quarantine(rows: Iterable[QuarantineRow], path: Path | str) -> None:
    df = pd.DataFrame([asdict(r) for r in rows], columns=QUARANTINE_COLUMNS)
    write_tsv(path, df)


# --------------------------------------------------------------------------- 1. index
def write_index(index: SourceIndex, index_path: Path | str, quarantine_path: Path | str) -> None:
    rows = []
    for r in index.records:
        rows.append(
            {
                "stem": r.stem,
                "source": r.source,
                "format": r.format,
                "source_path": _display_path(r.source_path),
                "patient_id": r.patient_id,
                "view": r.view,
                "sex": r.sex,
                "age": "" if r.age is None else f"{r.age:g}",
                "paediatric": int(r.paediatric),
                "finding_raw": r.finding_raw,
                "label5": r.label5,
                "license": r.license,
                "masks": json.dumps({k: _display_path(v) for k, v in sorted(r.masks.items())}),
            }
        )
    write_tsv(index_path, pd.DataFrame(rows, columns=INDEX_COLUMNS))
    write_quarantine(index.quarantine, quarantine_path)
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


def _read_mask(path: Path, shape: tuple[int, int], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A binary mask at ``shape``: any file format, threshold at half range (masks of
    resized renditions have interpolated edges), nearest-neighbour resize. Decoded as
    safely as an image (:func:`patchcxr.data.decode.open_checked`), EXIF orientation
    applied as to its image."""
    if not path.is_file():
        raise DecodeError(f"mask file {path} not found")
    try:
        im = open_checked(path, max_pixels)
    except DecodeError as err:
        raise DecodeError(f"unreadable mask {path}: {err}") from None
    try:
        gray = ImageOps.exif_transpose(im).convert("L")
    except Exception as err:
        raise DecodeError(f"unreadable mask {path}: {type(err).__name__}: {err}") from None
    finally:
        im.close()
    if gray.size != (shape[1], shape[0]):
        gray = gray.resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(gray) >= 128


def label_map(masks: dict[str, Path], shape: tuple[int, int], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One label map from a source's mask files.

    ``left``/``right`` are the patient's lungs; a combined ``lungs`` mask is split at the
    image's vertical midline (the patient's left lung lies on the image's right).
    The heart wins where it overlaps a lung.
    """
    out = np.zeros(shape, np.uint8)
    if "lungs" in masks:
        both = _read_mask(masks["lungs"], shape, max_pixels)
        cols = np.arange(shape[1])[None, :]
        out[both & (cols >= shape[1] / 2)] = LabelValue.LEFT_LUNG
        out[both & (cols < shape[1] / 2)] = LabelValue.RIGHT_LUNG
    if "left" in masks:
        out[_read_mask(masks["left"], shape, max_pixels)] = LabelValue.LEFT_LUNG
    if "right" in masks:
        out[_read_mask(masks["right"], shape, max_pixels)] = LabelValue.RIGHT_LUNG
    if "heart" in masks:
        out[_read_mask(masks["heart"], shape, max_pixels)] = LabelValue.HEART
    return out


def harmonise_shard(
    index_path: Path | str,
    shard: int,
    shard_size: int,
    rows_path: Path | str,
    *,
    quarantine_path: Path | str,
    images_dir: Path | str,
    masks_dir: Path | str,
    max_pixels: int = MAX_PIXELS,
) -> int:
    """Decode and store shard ``shard`` of an index; returns the images stored. A file that
    cannot be decoded safely (:mod:`patchcxr.data.decode`) is a quarantine row; nothing a
    file holds stops the shard."""
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
            img = decode(row.source_path, row.format, max_pixels=max_pixels)
        except DecodeError as err:
            bad.append(QuarantineRow(row.source_path, row.source, str(err)))
            continue
        image_path = images_dir / f"{row.stem}.png"
        atomic_write_bytes(image_path, encode_png(img.pixels))
        masks = {k: Path(v) for k, v in json.loads(row.masks).items()}
        mask_path = ""
        has_lung = has_heart = False
        if masks:
            try:
                labels = label_map(masks, img.pixels.shape, max_pixels)
            except DecodeError as err:
                bad.append(QuarantineRow(row.source_path, row.source, f"missing mask: {err}"))
            else:
                has_lung = bool(((labels == LabelValue.LEFT_LUNG) | (labels == LabelValue.RIGHT_LUNG)).any())
                has_heart = bool((labels == LabelValue.HEART).any())
                mask_path = _display_path(masks_dir / f"{row.stem}.png")
                atomic_write_bytes(masks_dir / f"{row.stem}.png", encode_png(labels))
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
                "image_path": _display_path(image_path),
                "mask_path": mask_path,
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


def build_manifest(
    shard_rows_paths: Sequence[Path | str],
    quarantine_paths: Sequence[Path | str],
    manifest_path: Path | str,
    quarantine_out: Path | str,
    *,
    source_order: Sequence[str],
    strict: bool = False,
) -> pd.DataFrame:
    """Join shards into ``manifest.tsv`` and every quarantine into ``quarantine.tsv``.

    Args:
        shard_rows_paths: the shards' row TSVs.
        quarantine_paths: index and shard quarantine TSVs.
        manifest_path, quarantine_out: outputs.
        source_order: configuration order of the sources; of duplicate images (same pixel
            sha256) the first in this order is kept.
        strict: fail (without writing the manifest) if anything was quarantined.
    """
    frames = [read_tsv(p) for p in shard_rows_paths]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MANIFEST_COLUMNS)
    df = df.reindex(columns=MANIFEST_COLUMNS).fillna("")
    order = {s: i for i, s in enumerate(source_order)}
    df = df.assign(_o=df["source"].map(order).fillna(len(order))).sort_values(["_o", "image_id"], kind="stable")
    df = df.drop(columns="_o").reset_index(drop=True)
    quarantine = [read_tsv(p) for p in quarantine_paths]
    q = pd.concat(quarantine, ignore_index=True) if quarantine else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    dup = df["sha256"].duplicated(keep="first")
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
    write_tsv(manifest_path, df)
    write_tsv(quarantine_out, q)
    log.info("manifest: %d images from %d sources; %d quarantined", len(df), df["source"].nunique(), len(q))
    return df
