"""Rule build_manifest: join the shards into manifest.tsv and quarantine.tsv."""

from typing import TYPE_CHECKING

from patchcxr.data.harmonise import build_manifest
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    rows: list[str], quarantine: list[str], manifest: str, quarantine_out: str, order: list[str], strict: bool, log: str
) -> None:
    setup_logging(log)
    build_manifest(rows, quarantine, manifest, quarantine_out, order, strict)


main(
    list(snakemake.input.rows),
    list(snakemake.input.quarantine),
    snakemake.output.manifest,
    snakemake.output.quarantine,
    list(snakemake.params.order),
    bool(snakemake.params.strict),
    snakemake.log[0],
)
