"""Checkpoint index_source: list a source's images and metadata (no decoding)."""

from typing import TYPE_CHECKING, Any

from patchcxr.data.harmonise import write_index
from patchcxr.data.labels import LabelRules
from patchcxr.data.readers import read_source
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(name: str, spec: dict[str, Any], labels: dict[str, Any], index: str, quarantine: str, log: str) -> None:
    setup_logging(log)
    write_index(read_source(name, spec, LabelRules.from_config(labels)), index, quarantine)


main(
    snakemake.wildcards.source,
    dict(snakemake.params.spec),
    dict(snakemake.params.labels),
    snakemake.output.index,
    snakemake.output.quarantine,
    snakemake.log[0],
)
