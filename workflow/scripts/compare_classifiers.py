"""Rule compare_classifiers: the global-versus-local table (the paper's claim)."""

from typing import TYPE_CHECKING

from patchcxr.evaluation import compare_models
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(paths: list[str], models: list[str], out: str, log: str) -> None:
    setup_logging(log)
    table = compare_models({m: read_tsv(p, typed=True) for m, p in zip(models, paths, strict=True)})
    write_tsv(out, table)


main(list(snakemake.input), list(snakemake.params.models), snakemake.output[0], snakemake.log[0])
