"""Rule build_manifest: join the shards into manifest.tsv and quarantine.tsv, account for
every file (intake.tsv) and report conflicts (conflicts.tsv). Each row is checked against
the manifest schema first: a row that fails is a quarantine row, not a failed manifest."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from jsonschema import Draft202012Validator

from patchcxr.data.harmonise import build_manifest
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def row_checker(schema: str) -> Callable[[dict[str, str]], str]:
    """A row's first problem against ``schema`` (column and message), or ``""``."""
    validator = Draft202012Validator(yaml.safe_load(Path(schema).read_text()))

    def check(row: dict[str, str]) -> str:
        error = next(iter(sorted(validator.iter_errors(row), key=str)), None)
        if error is None:
            return ""
        where = ".".join(str(p) for p in error.absolute_path) or "row"
        return f"{where}: {error.message[:200]}"

    return check


def main(
    inputs: dict[str, list[str]],
    outputs: dict[str, str],
    order: list[str],
    strict: bool,
    schema: str,
    log: str,
) -> None:
    setup_logging(log)
    build_manifest(
        inputs["rows"],
        inputs["quarantine"],
        outputs["manifest"],
        outputs["quarantine"],
        source_order=order,
        strict=strict,
        row_check=row_checker(schema),
        files={Path(p).name.removesuffix(".files.tsv"): p for p in inputs["files"]},
        conflicts_paths=inputs["conflicts"],
        conflicts_out=outputs["conflicts"],
        intake_out=outputs["intake"],
    )


main(
    {k: list(snakemake.input[k]) for k in ("rows", "quarantine", "files", "conflicts")},
    {k: snakemake.output[k] for k in ("manifest", "quarantine", "intake", "conflicts")},
    list(snakemake.params.order),
    bool(snakemake.params.strict),
    snakemake.params.schema,
    snakemake.log[0],
)
