"""Rule test_biomarkers: omnibus and pairwise tests of every feature across classes."""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.biomarkers import compare_classes
from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(features: str, label: str, seed: int, out: str, log: str) -> None:
    setup_logging(log)
    tests = compare_classes(
        pd.read_csv(features, sep="\t", keep_default_na=True).fillna({"view": "", label: ""}), label=label, seed=seed
    )
    atomic_write_text(out, tests.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))


main(
    snakemake.input.features, snakemake.params.label, int(snakemake.params.seed), snakemake.output[0], snakemake.log[0]
)
