"""Rule paper_training_curves: validation score and training loss of every network."""

from typing import TYPE_CHECKING

from patchcxr.figures import plot_training_curves
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(histories: dict[str, str], out: str, log: str) -> None:
    setup_logging(log)
    plot_training_curves(dict(histories), out)


main(dict(snakemake.input.items()), snakemake.output[0], snakemake.log[0])
