"""Rule plot_reliability: the reliability diagram of the soft vote (from reliability.tsv)."""

from typing import TYPE_CHECKING

from patchcxr.figures import plot_reliability
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(table: str, out: str, log: str) -> None:
    setup_logging(log)
    plot_reliability(table, out)


main(snakemake.input[0], snakemake.output[0], snakemake.log[0])
