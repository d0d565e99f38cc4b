"""Rule plot_reliability: the reliability diagram of the soft vote (from reliability.tsv)."""

from typing import TYPE_CHECKING

from patchcxr.figures import plot_reliability
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(table: str, out: str, title: str, log: str) -> None:
    setup_logging(log)
    plot_reliability(table, out, title=title)


main(
    snakemake.input[0],
    snakemake.output[0],
    f"{snakemake.wildcards.model} classifier, seed {snakemake.wildcards.seed}",
    snakemake.log[0],
)
