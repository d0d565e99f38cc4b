"""Rule make_splits: classification and segmentation splits, checked for leakage."""

from typing import TYPE_CHECKING, Any

from patchcxr.data.splits import write_splits
from patchcxr.io import read_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(cohort: str, manifest: str, splits: dict[str, Any], classification: str, segmentation: str, log: str) -> None:
    setup_logging(log)
    write_splits(read_tsv(cohort), read_tsv(manifest), splits, classification, segmentation_path=segmentation)


main(
    snakemake.input.cohort,
    snakemake.input.manifest,
    dict(snakemake.params.splits),
    snakemake.output.classification,
    snakemake.output.segmentation,
    snakemake.log[0],
)
