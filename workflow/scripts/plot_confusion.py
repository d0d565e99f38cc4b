"""Rule plot_confusion: the confusion matrix figure (from confusion.tsv)."""

from typing import TYPE_CHECKING

from patchcxr.figures import plot_confusion
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(table: str, out: str, title: str, log: str) -> None:
    setup_logging(log)
    plot_confusion(table, out, title=title)


main(
    snakemake.input[0],
    snakemake.output[0],
    f"{snakemake.wildcards.model} classifier, seed {snakemake.wildcards.seed}",
    snakemake.log[0],
)
