"""Rule plot_saliency: the grid of saliency overlays (from saliency.tsv)."""

from typing import TYPE_CHECKING

from patchcxr.figures import plot_saliency
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(table: str, out: str, per_row: int, title: str, log: str) -> None:
    setup_logging(log)
    plot_saliency(table, out, per_row, title=title)


main(
    snakemake.input.table,
    snakemake.output[0],
    int(snakemake.params.per_row),
    str(snakemake.params.title),
    snakemake.log[0],
)
