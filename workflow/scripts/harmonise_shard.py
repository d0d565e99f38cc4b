"""Rule harmonise_shard: decode and store one block of a source's images and masks."""

from typing import TYPE_CHECKING

from patchcxr.data.harmonise import harmonise_shard
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    index: str, shard: int, shard_size: int, rows: str, quarantine: str, images: str, masks: str, log: str
) -> None:
    setup_logging(log)
    harmonise_shard(index, shard, shard_size, rows, quarantine_path=quarantine, images_dir=images, masks_dir=masks)


main(
    snakemake.input.index,
    int(snakemake.wildcards.shard),
    int(snakemake.params.shard_size),
    snakemake.output.rows,
    snakemake.output.quarantine,
    snakemake.output.images,
    snakemake.output.masks,
    snakemake.log[0],
)
