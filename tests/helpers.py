"""The data stage without Snakemake: index → shards → manifest, as the rules chain them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from patchcxr.data.harmonise import build_manifest, harmonise_shard, write_index
from patchcxr.data.labels import LabelRules
from patchcxr.data.readers import read_source
from patchcxr.io import read_tsv, write_png
from patchcxr.shards import n_shards
from tests.conftest import ROOT, SHARED_SAMPLE


def run_data_stage(
    sources: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, Any],
    out: Path,
    shard_size: int = 7,
    strict: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Manifest and quarantine of ``sources`` (specs with resolved ``path``/``masks``)."""
    rules = LabelRules.from_config(labels)
    rows, quarantine = [], []
    for name, spec in sources.items():
        idx, q = out / "index" / f"{name}.tsv", out / "index" / f"{name}.q.tsv"
        write_index(read_source(name, spec, rules), idx, q)
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
            )
            rows.append(r)
            quarantine.append(sq)
    build_manifest(
        rows, quarantine, out / "manifest.tsv", out / "quarantine.tsv", source_order=list(sources), strict=strict
    )
    return read_tsv(out / "manifest.tsv"), read_tsv(out / "quarantine.tsv")


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
