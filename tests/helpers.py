"""The data stage without Snakemake: index → shards → manifest, as the rules chain them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from patchcxr.data.harmonise import build_manifest, harmonise_shard, n_shards, read_tsv, write_index
from patchcxr.data.labels import LabelRules
from patchcxr.data.readers import read_source


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
                idx, shard, shard_size, r, sq, out / "images" / name / str(shard), out / "masks" / name / str(shard)
            )
            rows.append(r)
            quarantine.append(sq)
    build_manifest(rows, quarantine, out / "manifest.tsv", out / "quarantine.tsv", list(sources), strict)
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
