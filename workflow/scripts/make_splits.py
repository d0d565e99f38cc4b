"""Rule make_splits: classification and segmentation splits, checked for leakage, and the
segmenter that masks each classified film."""

from typing import TYPE_CHECKING, Any

from patchcxr.data.splits import write_splits
from patchcxr.io import read_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(cohort: str, manifest: str, splits: dict[str, Any], outputs: dict[str, str], log: str) -> None:
    setup_logging(log)
    write_splits(
        read_tsv(cohort),
        read_tsv(manifest),
        splits,
        outputs["classification"],
        segmentation_path=outputs["segmentation"],
        mask_folds_path=outputs["mask_folds"],
    )


main(
    snakemake.input.cohort,
    snakemake.input.manifest,
    dict(snakemake.params.splits),
    {k: snakemake.output[k] for k in ("classification", "segmentation", "mask_folds")},
    snakemake.log[0],
)
