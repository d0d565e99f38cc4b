"""Rule build_manifest: join the shards into manifest.tsv and quarantine.tsv."""

from typing import TYPE_CHECKING

from snakemake.utils import validate

from patchcxr.data.harmonise import build_manifest
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    rows: list[str],
    quarantine: list[str],
    manifest: str,
    quarantine_out: str,
    order: list[str],
    strict: bool,
    schema: str,
    log: str,
) -> None:
    """Build the manifest, then check every row against ``schema``."""
    setup_logging(log)
    df = build_manifest(rows, quarantine, manifest, quarantine_out, source_order=order, strict=strict)
    validate(df.astype(str), schema, set_default=False)


main(
    list(snakemake.input.rows),
    list(snakemake.input.quarantine),
    snakemake.output.manifest,
    snakemake.output.quarantine,
    list(snakemake.params.order),
    bool(snakemake.params.strict),
    snakemake.params.schema,
    snakemake.log[0],
)
