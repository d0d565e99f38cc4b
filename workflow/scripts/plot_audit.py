"""Rule plot_audit: the confound audit's figure (class x source shares, source probes)."""

from typing import TYPE_CHECKING

from patchcxr.figures import plot_audit
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(class_source: str, probes: str, out: str, log: str) -> None:
    setup_logging(log)
    plot_audit(class_source, probes, out)


main(snakemake.input.class_source, snakemake.input.probes, snakemake.output[0], snakemake.log[0])
