"""Rule make_synthetic: write one synthetic source and its ground truth."""

from typing import TYPE_CHECKING, Any

from patchcxr.logs import setup_logging
from patchcxr.synthetic import generate_source

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(source: str, params: dict[str, Any], out_dir: str, truth_dir: str, log: str) -> None:
    """Generate ``source`` into ``out_dir`` (original layout) and ``truth_dir``."""
    setup_logging(log)
    generate_source(source, params, out_dir, truth_dir)


main(
    snakemake.wildcards.source,
    dict(snakemake.params.synthetic),
    snakemake.output.source,
    snakemake.output.truth,
    snakemake.log[0],
)
