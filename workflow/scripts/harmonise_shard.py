"""Rule harmonise_shard: decode and store one block of a source's images and masks."""

from typing import TYPE_CHECKING

from patchcxr.data.harmonise import harmonise_shard
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    index: str,
    shard: int,
    shard_size: int,
    max_pixels: int,
    outputs: dict[str, str],
    log: str,
) -> None:
    setup_logging(log)
    harmonise_shard(
        index,
        shard,
        shard_size,
        outputs["rows"],
        quarantine_path=outputs["quarantine"],
        images_dir=outputs["images"],
        masks_dir=outputs["masks"],
        max_pixels=max_pixels,
    )


main(
    snakemake.input.index,
    int(snakemake.wildcards.shard),
    int(snakemake.params.shard_size),
    int(snakemake.params.max_pixels),
    {k: snakemake.output[k] for k in ("rows", "quarantine", "images", "masks")},
    snakemake.log[0],
)
