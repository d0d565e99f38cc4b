"""Rule paper_index: results/paper/README.md, every file with its caption."""

from typing import TYPE_CHECKING

from patchcxr.logs import setup_logging
from patchcxr.paper.tables import write_index

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(captions: dict[str, str], banner: str, out: str, log: str) -> None:
    setup_logging(log)
    write_index(captions, out, banner)


main(dict(snakemake.params.captions), str(snakemake.params.banner), snakemake.output[0], snakemake.log[0])
