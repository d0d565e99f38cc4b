"""Rule evaluate_classifier: metrics with bootstrap intervals, confusion, per-source view."""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.evaluation import confusion_long, metrics_long, per_source
from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging
from patchcxr.training import load_state

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(predictions: str, model: str, vote: str, n_boot: int, seed: int, outputs: dict[str, str], log: str) -> None:
    setup_logging(log)
    names = list(load_state(model)["classes"])
    pred = pd.read_csv(predictions, sep="\t")
    y, p = pred["true_index"].to_numpy(), pred[f"pred_{vote}_index"].to_numpy()
    tables = {
        "metrics": metrics_long(y, p, names, n_boot, seed).assign(vote=vote),
        "confusion": confusion_long(y, p, names),
        "per_source": per_source(pred, names, vote),
    }
    for key, df in tables.items():
        atomic_write_text(outputs[key], df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))


main(
    snakemake.input.predictions,
    snakemake.input.model,
    snakemake.params.vote,
    int(snakemake.params.bootstrap),
    int(snakemake.params.seed),
    {k: snakemake.output[k] for k in ("metrics", "confusion", "per_source")},
    snakemake.log[0],
)
