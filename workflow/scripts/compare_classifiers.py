"""Rule compare_classifiers: the global-versus-local table (the paper's claim), with the
paired tests of local against global on the same test images."""

from typing import TYPE_CHECKING

from patchcxr.evaluation import compare_models, paired_comparison
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    metrics: list[str],
    predictions: list[str],
    models: list[str],
    settings: dict[str, object],
    out: str,
    log: str,
) -> None:
    setup_logging(log)
    tables = {m: read_tsv(p, typed=True) for m, p in zip(models, metrics, strict=True)}
    paired = None
    if set(models) == {"local", "global"}:
        preds = {m: read_tsv(p, typed=True) for m, p in zip(models, predictions, strict=True)}
        # the classes in the model's order, as the predictions table names them
        names = [c.removeprefix("prob_") for c in preds["local"].columns if c.startswith("prob_")]
        paired = paired_comparison(
            preds["local"],
            preds["global"],
            names,
            labels=("local", "global"),
            vote=str(settings["vote"]),
            n_boot=int(str(settings["bootstrap"])),
            seed=int(str(settings["seed"])),
        )
    write_tsv(out, compare_models(tables, paired))


main(
    list(snakemake.input.metrics),
    list(snakemake.input.predictions),
    list(snakemake.params.models),
    dict(snakemake.params.settings),
    snakemake.output[0],
    snakemake.log[0],
)
