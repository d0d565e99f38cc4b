"""Rule paper_figure: a figure copied into results/paper/ (atomically, bytes unchanged)."""

from pathlib import Path
from typing import TYPE_CHECKING

from patchcxr.io import atomic_write_bytes
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(src: str, dest: str, log: str) -> None:
    setup_logging(log)
    atomic_write_bytes(dest, Path(src).read_bytes())


main(snakemake.input[0], snakemake.output[0], snakemake.log[0])
