"""Rule harmonise_shard: decode, check and store one block of a source's images and masks."""

from typing import TYPE_CHECKING, Any

from patchcxr.data.harmonise import IntakeRules, harmonise_shard
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    index: str,
    shard: int,
    shard_size: int,
    data: dict[str, Any],
    mask_foreground: int,
    mask_rendition: bool,
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
        rules=IntakeRules.from_config(data),
        mask_foreground=mask_foreground,
        mask_rendition=mask_rendition,
    )


main(
    snakemake.input.index,
    int(snakemake.wildcards.shard),
    int(snakemake.params.shard_size),
    dict(snakemake.params.intake),
    int(snakemake.params.mask_foreground),
    bool(snakemake.params.mask_rendition),
    {k: snakemake.output[k] for k in ("rows", "quarantine", "images", "masks")},
    snakemake.log[0],
)
