"""Helpers shared by the test modules (no test module imports another): the data stage
without Snakemake (index → shards → manifest, as the rules chain them), synthetic and
hostile files, model files for the triage command, tree digests, planted classifier inputs,
and the package's import graph."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import struct
import zlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from patchcxr.data.harmonise import build_manifest, display_path, harmonise_shard, write_index
from patchcxr.data.intake import DISPOSITIONS, path_key
from patchcxr.data.labels import LabelRules
from patchcxr.data.readers import account_source, read_source
from patchcxr.io import atomic_write_bytes, read_tsv, write_png
from patchcxr.shards import n_shards
from tests.conftest import ROOT, SHARED_SAMPLE

if TYPE_CHECKING:
    from patchcxr.classification.settings import InputSettings


def run_data_stage(
    sources: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, Any],
    out: Path,
    shard_size: int = 7,
    strict: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Manifest and quarantine of ``sources`` (specs with resolved ``path``/``masks``)."""
    rules = LabelRules.from_config(labels)
    rows, quarantine, files, conflicts = [], [], {}, []
    for name, spec in sources.items():
        idx, q = out / "index" / f"{name}.tsv", out / "index" / f"{name}.q.tsv"
        files[name] = out / "index" / f"{name}.files.tsv"
        conflicts.append(out / "index" / f"{name}.conflicts.tsv")
        index = read_source(name, spec, rules)
        table = account_source(name, spec, index, display_path)
        write_index(index, idx, q, files=table, files_path=files[name], conflicts_path=conflicts[-1])
        quarantine.append(q)
        n = len(read_tsv(idx))
        for shard in range(n_shards(n, shard_size) if n else 0):
            r, sq = out / "shards" / name / f"{shard}.tsv", out / "shards" / name / f"{shard}.q.tsv"
            harmonise_shard(
                idx,
                shard,
                shard_size,
                r,
                quarantine_path=sq,
                images_dir=out / "images" / name / str(shard),
                masks_dir=out / "masks" / name / str(shard),
                mask_foreground=int(spec.get("mask_foreground", 255)),
                mask_rendition=bool(spec.get("masks_path")),
            )
            rows.append(r)
            quarantine.append(sq)
    build_manifest(
        rows,
        quarantine,
        out / "manifest.tsv",
        out / "quarantine.tsv",
        source_order=list(sources),
        strict=strict,
        files=files,
        conflicts_paths=conflicts,
        conflicts_out=out / "conflicts.tsv",
        intake_out=out / "intake.tsv",
    )
    return read_tsv(out / "manifest.tsv"), read_tsv(out / "quarantine.tsv")


def assert_accounted(specs: Mapping[str, Mapping[str, Any]], out: Path) -> None:
    """The intake invariant: every entry under each source folder is listed once in its
    file table with one disposition; a file a quarantine row names is never also ignored;
    every indexed film is in the manifest or named by a quarantine row; and every source
    balances in ``intake.tsv`` (its manifest rows are its films)."""
    intake = pd.read_csv(out / "intake.tsv", sep="\t")
    assert (intake["balanced"] == 1).all(), intake.to_string()
    manifest = read_tsv(out / "manifest.tsv")
    named = {path_key(f) for f in read_tsv(out / "quarantine.tsv")["file"]}
    for name, spec in specs.items():
        table = read_tsv(out / "index" / f"{name}.files.tsv")
        listed = Counter(path_key(f) for f in table["file"])
        assert all(n == 1 for n in listed.values()), [f for f, n in listed.items() if n > 1]
        on_disk = set()
        for folder, dirs, files in os.walk(spec["path"]):
            for entry in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                on_disk.add(path_key(os.path.join(folder, entry)))
        assert on_disk <= set(listed), on_disk - set(listed)
        assert set(table["disposition"]) <= set(DISPOSITIONS)
        keys = table["file"].map(path_key)
        assert not set(keys[table["disposition"] == "ignored"]) & named, "a quarantined file is also ignored"
        films = {path_key(f) for f in manifest.loc[manifest["source"] == name, "source_path"]}
        assert set(keys[table["disposition"] == "image"]) <= films | named, "an indexed film went nowhere"


def synthetic_sources(tree: Path) -> dict[str, dict[str, Any]]:
    """Source specs for a synthetic tree, as config/demo.yaml maps them."""
    return {
        "jsrt": {"format": "jsrt", "path": str(tree / "jsrt"), "masks": str(tree / "scr")},
        "scr": {"format": "scr", "path": str(tree / "scr")},
        "montgomery": {"format": "montgomery", "path": str(tree / "montgomery")},
        "shenzhen": {"format": "shenzhen", "path": str(tree / "shenzhen")},
        "kermany": {"format": "kermany", "path": str(tree / "kermany")},
        "cohen": {"format": "cohen", "path": str(tree / "cohen")},
    }


def sample_sources(base: Path = SHARED_SAMPLE) -> dict[str, dict[str, Any]]:
    """config/sample.yaml's sources with folders resolved against ``base``."""
    spec = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())["sources"]
    out = {}
    for name, s in spec.items():
        s = dict(s)
        for key in ("path", "masks_path"):
            if key in s:
                s[key] = str(base / Path(s[key]).relative_to("../shared/data/cxr-sample"))
        if s.get("masks"):
            s["masks"] = out[s["masks"]]["path"] if s["masks"] in out else str(base / "scr")
        s.pop("enabled", None)
        out[name] = s
    return out


def film_with_two_masks(tmp: Path, predicted_lung: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One Montgomery-like TB film (120 × 100) as manifest, cohort and mask-shard tables: its
    ground-truth mask has two 40 × 35 lungs in the upper half, its predicted mask two 30 × 30
    lungs and a heart in the lower half (or nothing, ``predicted_lung=False``)."""
    write_png(tmp / "img.png", np.random.default_rng(0).integers(30, 220, (120, 100)).astype(np.uint8))
    truth = np.zeros((120, 100), np.uint8)
    truth[10:50, 10:45], truth[10:50, 55:90] = 3, 2
    pred = np.zeros((120, 100), np.uint8)
    if predicted_lung:
        pred[70:100, 10:40], pred[70:100, 55:85] = 3, 2
        pred[75:95, 42:53] = 1
    write_png(tmp / "truth.png", truth)
    write_png(tmp / "pred.png", pred)
    manifest = pd.DataFrame(
        [
            {
                "image_id": "montgomery/a",
                "image_path": str(tmp / "img.png"),
                "mask_path": str(tmp / "truth.png"),
                "has_lung_mask": "1",
                "has_heart_mask": "0",
                "format": "montgomery",
                "patient_id": "montgomery:a",
                "source": "montgomery",
                "view": "PA",
                "paediatric": "0",
                "label5": "tb",
                "label4": "tb",
            }
        ]
    )
    masks = pd.DataFrame({"image_id": ["montgomery/a"], "mask_path": [str(tmp / "pred.png")]})
    return manifest, manifest[["image_id", "label5", "label4"]], masks


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by its path relative to ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_dicom(path: Path, pixels: np.ndarray, photometric: str) -> None:
    """A 12-bit digital X-ray DICOM file of ``pixels`` (uncompressed, ``photometric``
    MONOCHROME1 or MONOCHROME2)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.PatientID, ds.ViewPosition = "DX", "P1", "PA"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 20000) -> bytes:
    """A valid one-bit PNG of ``side``² pixels (400 M at 20 000), a few tens of KB."""
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + one bit per pixel
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def triage_models(
    tmp: Path, classifier_inputs: InputSettings | None = None, backbone: str = "resnet18", *, lung: bool = True
) -> tuple[Path, Path]:
    """Model files for ``patchcxr predict`` in ``tmp``: a segmenter that calls every pixel
    lung (or, ``lung=False``, every pixel background), and an untrained classifier of
    ``backbone`` on inputs made as ``classifier_inputs`` (an ``InputSettings``; default
    128²)."""
    import torch

    from patchcxr.classification.settings import ClassifierSettings, InputSettings, model_file_fields
    from patchcxr.models.classifier import network
    from patchcxr.models.segmentation import UNet
    from patchcxr.models.state import state_to_bytes
    from patchcxr.preprocess import PreprocessSettings

    seg = UNet(base=4, depth=2)
    with torch.no_grad():
        seg.final.weight.zero_()
        seg.final.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0] if lung else [5.0, 0.0, 0.0, 0.0]))
    atomic_write_bytes(
        tmp / "seg.pt",
        state_to_bytes(
            {
                "arch": "unet",
                "n_classes": 4,
                "options": json.dumps({"base": 4, "depth": 2}),
                "preprocessing": json.dumps(PreprocessSettings(size=64).__dict__),
                "state_dict": seg.state_dict(),
            }
        ),
    )
    torch.manual_seed(0)
    cls = network(backbone, 4)
    atomic_write_bytes(
        tmp / "cls.pt",
        state_to_bytes(
            {
                **model_file_fields(
                    ClassifierSettings(patch=32, backbone=backbone), classifier_inputs or InputSettings(size=128)
                ),
                "state_dict": cls.state_dict(),
            }
        ),
    )
    return tmp / "seg.pt", tmp / "cls.pt"


def planted_inputs(tmp: Path, n_per_class: dict[str, int], size: int = 96) -> pd.DataFrame:
    """Masked inputs whose class is a planted texture inside the lung field: horizontal
    stripes for normal, vertical for TB (period 8 pixels, amplitude 50 grey levels on a
    noisy background of sd 20), each film its own patient."""
    rng = np.random.default_rng(42)
    yy, xx = np.mgrid[:size, :size]
    lung = (np.abs(yy - size / 2) < size * 0.4) & (np.abs(xx - size / 2) < size * 0.4)
    rows = []
    for split, counts in n_per_class.items():
        for label, n in counts.items():  # type: ignore[attr-defined]
            for i in range(n):
                phase = rng.uniform(0, 2 * np.pi)
                wave = np.sin(2 * np.pi * (yy if label == "normal" else xx) / 8 + phase)
                img = np.clip(120 + 50 * wave + rng.normal(0, 20, (size, size)), 1, 255) * lung
                image_id = f"planted/{split}-{label}-{i}"
                ip, lp = tmp / f"{split}-{label}-{i}.png", tmp / f"{split}-{label}-{i}.lung.png"
                write_png(ip, np.round(img).astype(np.uint8))
                write_png(lp, lung.astype(np.uint8))
                rows.append(
                    {
                        "image_id": image_id,
                        "input_path": str(ip),
                        "lung_path": str(lp),
                        "mask_source": "predicted",
                        "label5": label,
                        "label4": label,
                        "patient_id": image_id,
                        "source": "planted",
                        "paediatric": 0,
                        "split": split,
                    }
                )
    return pd.DataFrame(rows)


#: the package's source folder
SRC = ROOT / "src" / "patchcxr"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports, at any depth of the file (function-level
    imports included: they hide a cycle, they do not remove it)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("patchcxr"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("patchcxr")}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph
