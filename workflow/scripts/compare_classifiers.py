"""Rule compare_classifiers: the global-versus-local table (the paper's claim)."""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.evaluation import compare_models
from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(paths: list[str], models: list[str], out: str, log: str) -> None:
    setup_logging(log)
    table = compare_models({m: pd.read_csv(p, sep="\t") for m, p in zip(models, paths, strict=True)})
    atomic_write_text(out, table.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))


main(list(snakemake.input), list(snakemake.params.models), snakemake.output[0], snakemake.log[0])
