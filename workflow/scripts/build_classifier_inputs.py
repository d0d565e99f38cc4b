"""Rule build_classifier_inputs: cached masked inputs of one shard's cohort images."""

from typing import TYPE_CHECKING

from patchcxr.classification.data import InputSettings, build_inputs
from patchcxr.data.harmonise import read_tsv
from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str, cohort: str, masks: str, size: int, gamma: float, crop_band: bool, files: str, rows: str, log: str
) -> None:
    setup_logging(log)
    settings = InputSettings(size=size, gamma=gamma, crop_band=crop_band)
    table = build_inputs(read_tsv(manifest), read_tsv(cohort), read_tsv(masks), files, settings)
    atomic_write_text(rows, table.to_csv(sep="\t", index=False, lineterminator="\n"))


main(
    snakemake.input.manifest,
    snakemake.input.cohort,
    snakemake.input.masks,
    int(snakemake.params.size),
    float(snakemake.params.gamma),
    bool(snakemake.params.crop_band),
    snakemake.output.files,
    snakemake.output.rows,
    snakemake.log[0],
)
