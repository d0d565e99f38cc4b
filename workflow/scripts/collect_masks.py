"""Rule collect_masks: the QC table of every predicted mask."""

from typing import TYPE_CHECKING

from patchcxr.logs import setup_logging
from patchcxr.segmentation.predict import collect_qc

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(parts: list[str], out: str, log: str) -> None:
    setup_logging(log)
    collect_qc(parts, out)


main(list(snakemake.input), snakemake.output[0], snakemake.log[0])
