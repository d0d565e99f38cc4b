"""Rule within_class: does each audited classifier's call depend on the source given the class?"""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.audit.within import within_class_table
from patchcxr.data.labels import class_names
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(predictions: list[str], models: list[str], labels: str, figures: dict[str, int], out: str, log: str) -> None:
    setup_logging(log)
    names = class_names(labels)
    tables = [
        within_class_table(read_tsv(path), names, model=model, **figures)
        for model, path in zip(models, predictions, strict=True)
    ]
    write_tsv(out, pd.concat(tables, ignore_index=True))


main(
    [str(p) for p in snakemake.input.predictions],
    [str(m) for m in snakemake.params.models],
    str(snakemake.params.labels),
    {
        "n_perm": int(snakemake.params.permutations),
        "seed": int(snakemake.params.seed),
        "min_patients": int(snakemake.params.min_patients),
    },
    snakemake.output[0],
    snakemake.log[0],
)
