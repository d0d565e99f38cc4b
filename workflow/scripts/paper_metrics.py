"""Rule paper_metrics: results/paper/metrics.json, the headline numbers (dvc metrics show)."""

from typing import TYPE_CHECKING

from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging
from patchcxr.paper.metrics import metrics_text

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(inputs: dict[str, list[str]], out: str, log: str) -> None:
    setup_logging(log)
    atomic_write_text(out, metrics_text(inputs))


main({name: [str(p) for p in paths] for name, paths in snakemake.input.items()}, snakemake.output[0], snakemake.log[0])
