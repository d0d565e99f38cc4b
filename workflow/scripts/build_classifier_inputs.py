"""Rule build_classifier_inputs: cached masked inputs of one shard's cohort images."""

from typing import TYPE_CHECKING

from patchcxr.classification.data import build_inputs
from patchcxr.classification.settings import InputSettings
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(manifest: str, cohort: str, masks: str, settings_path: str, files: str, rows: str, log: str) -> None:
    setup_logging(log)
    settings = InputSettings.read(settings_path)
    table = build_inputs(read_tsv(manifest), read_tsv(cohort), read_tsv(masks), files, settings=settings)
    write_tsv(rows, table)


main(
    snakemake.input.manifest,
    snakemake.input.cohort,
    snakemake.input.masks,
    snakemake.input.settings,
    snakemake.output.files,
    snakemake.output.rows,
    snakemake.log[0],
)
