"""Rule compare_classifiers: the global-versus-local table (the paper's claim) for each
training seed, with the paired tests of local against global on the same test images, the
same comparison pooled over the seeds, and every metric of each classifier over its
training seeds."""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.evaluation.comparisons import (
    POOLED_COLUMNS,
    compare_models,
    over_seeds,
    paired_comparison,
    pooled_comparison,
)
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    metrics: list[str],
    predictions: list[str],
    runs: list[tuple[str, int]],
    settings: dict[str, object],
    outputs: dict[str, str],
    log: str,
) -> None:
    setup_logging(log)
    tables = {(m, s): read_tsv(p, typed=True) for (m, s), p in zip(runs, metrics, strict=True)}
    preds = dict(zip(runs, predictions, strict=True))
    models = list(dict.fromkeys(m for m, _ in runs))
    seeds = list(dict.fromkeys(s for _, s in runs))
    per_seed = []
    pairs = {}
    names: list[str] = []
    for seed in seeds:
        paired = None
        if set(models) == {"local", "global"}:
            local, glob = (read_tsv(preds[(m, seed)], typed=True) for m in ("local", "global"))
            pairs[seed] = (local, glob)
            # the classes in the model's order, as the predictions table names them
            names = [c.removeprefix("prob_") for c in local.columns if c.startswith("prob_")]
            paired = paired_comparison(
                local,
                glob,
                names,
                labels=("local", "global"),
                vote=str(settings["vote"]),
                n_boot=int(str(settings["bootstrap"])),
                seed=seed,
            )
        table = compare_models({m: tables[(m, seed)] for m in models}, paired)
        per_seed.append(table.assign(seed=seed)[["seed", *table.columns]])
    write_tsv(outputs["comparison"], pd.concat(per_seed, ignore_index=True))
    pooled = (
        pooled_comparison(
            pairs,
            names,
            labels=("local", "global"),
            vote=str(settings["vote"]),
            n_boot=int(str(settings["bootstrap"])),
            seed=seeds[0],
        )
        if pairs
        else pd.DataFrame(columns=POOLED_COLUMNS)
    )
    write_tsv(outputs["pooled"], pooled)
    write_tsv(outputs["seeds"], over_seeds({m: {s: tables[(m, s)] for s in seeds} for m in models}))


main(
    list(snakemake.input.metrics),
    list(snakemake.input.predictions),
    [(str(m), int(s)) for m, s in snakemake.params.runs],
    dict(snakemake.params.settings),
    dict(snakemake.output.items()),
    snakemake.log[0],
)
