"""Rule plot_segmentation: Jaccard per structure, model and preprocessing (from scores.tsv)."""

from typing import TYPE_CHECKING

from patchcxr.figures import plot_segmentation_scores
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(scores: str, out: str, min_n: int, log: str) -> None:
    setup_logging(log)
    plot_segmentation_scores(scores, out, min_n=min_n)


main(snakemake.input.scores, snakemake.output[0], int(snakemake.params.min_n), snakemake.log[0])
