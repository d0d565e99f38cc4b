"""Rule select_cohort: the images (and labels) an experiment uses."""

from typing import TYPE_CHECKING

from patchcxr.data.cohorts import select_cohort
from patchcxr.io import read_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str,
    quarantine: str,
    metadata: str | None,
    cohort: str,
    exclude_paediatric: bool,
    order: list[str],
    formats: dict[str, str],
    sources: list[str],
    cohort_out: str,
    missing_out: str,
    log: str,
) -> None:
    setup_logging(log)
    select_cohort(
        read_tsv(manifest),
        cohort,
        cohort_out,
        missing_out,
        metadata=metadata,
        exclude_paediatric=exclude_paediatric,
        source_order={name: i for i, name in enumerate(order)},
        quarantine=read_tsv(quarantine),
        source_formats=formats,
        sources=sources,
    )


main(
    snakemake.input.manifest,
    snakemake.input.quarantine,
    snakemake.input.get("metadata"),
    snakemake.params.cohort,
    bool(snakemake.params.exclude_paediatric),
    list(snakemake.params.order),
    dict(snakemake.params.formats),
    list(snakemake.params.sources),
    snakemake.output.cohort,
    snakemake.output.missing,
    snakemake.log[0],
)
