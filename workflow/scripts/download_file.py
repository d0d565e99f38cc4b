"""Rule download_paper_metadata: one file from a pinned URL, checked by sha256."""

from typing import TYPE_CHECKING

from patchcxr.data.download import download_file
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(url: str, sha256: str, dest: str, log: str) -> None:
    setup_logging(log)
    download_file(url, dest, sha256)


main(snakemake.params.url, snakemake.params.sha256, snakemake.output[0], snakemake.log[0])
