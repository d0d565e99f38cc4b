"""Rule download_<source>: fetch a source as its download spec says."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchcxr.data.download import fetch_source
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(name: str, spec: dict[str, Any], dest: str, log: str) -> None:
    """Download source ``name`` into ``dest`` (partial downloads kept beside it for resume)."""
    setup_logging(log)
    fetch_source(name, spec, dest, cache=Path(dest).parent / f".{name}.download")


main(snakemake.params.name, dict(snakemake.params.spec), snakemake.output[0], snakemake.log[0])
