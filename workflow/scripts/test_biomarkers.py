"""Rule test_biomarkers: omnibus and pairwise tests of every feature across classes."""

from typing import TYPE_CHECKING

from patchcxr.biomarkers.statistics import compare_classes
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(features: str, label: str, reference: str, seed: int, n_boot: int, out: str, log: str) -> None:
    setup_logging(log)
    table = read_tsv(features, typed=True).fillna({"view": "", label: ""})
    tests = compare_classes(table, label=label, seed=seed, reference=reference, n_boot=n_boot)
    write_tsv(out, tests)


main(
    snakemake.input.features,
    snakemake.params.label,
    snakemake.params.reference,
    int(snakemake.params.seed),
    int(snakemake.params.bootstrap),
    snakemake.output[0],
    snakemake.log[0],
)
