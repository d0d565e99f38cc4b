"""Checkpoint plan_shards: how many harmonisation jobs each source needs."""

from typing import TYPE_CHECKING

from patchcxr.data.harmonise import plan_shards
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(indexes: list[str], names: list[str], shard_size: int, out: str, log: str) -> None:
    setup_logging(log)
    plan_shards(indexes, names, shard_size, out)


main(
    list(snakemake.input),
    list(snakemake.params.names),
    int(snakemake.params.shard_size),
    snakemake.output[0],
    snakemake.log[0],
)
