"""Shard arithmetic: how a table of images is cut into jobs. The workflow (how many jobs
to schedule) and the jobs (which rows are theirs) both use these two functions."""

from __future__ import annotations

import pandas as pd


def n_shards(n_images: int, shard_size: int) -> int:
    """Jobs needed for ``n_images`` at ``shard_size`` images per job (at least one, so that
    an empty table still gives its stage one job and its outputs)."""
    return max(1, -(-n_images // shard_size))


def shard_rows(table: pd.DataFrame, shard: int, shard_size: int) -> pd.DataFrame:
    """The rows of job ``shard`` (0-based) of ``table``."""
    return table.iloc[shard * shard_size : (shard + 1) * shard_size]
