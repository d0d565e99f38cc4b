"""Rule source_only_baseline: the test films' classes predicted from their source alone."""

from typing import TYPE_CHECKING

from patchcxr.data.labels import class_names
from patchcxr.evaluation.baselines import rule_text, source_only_predictions
from patchcxr.evaluation.metrics import metrics_long
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(split: str, cohort: str, labels: str, n_boot: int, seed: int, out: dict[str, str], log: str) -> None:
    setup_logging(log)
    names = class_names(labels)
    predictions, rule = source_only_predictions(read_tsv(split), read_tsv(cohort), labels, names)
    write_tsv(out["predictions"], predictions)
    metrics = metrics_long(
        predictions["true_index"].to_numpy(int),
        predictions["pred_hard_index"].to_numpy(int),
        names,
        groups=predictions["patient_id"].astype(str).to_numpy(),
        n_boot=n_boot,
        seed=seed,
    )
    write_tsv(out["metrics"], metrics.assign(rule=rule_text(rule)))


main(
    snakemake.input.split,
    snakemake.input.cohort,
    str(snakemake.params.labels),
    int(snakemake.params.n_boot),
    int(snakemake.params.seed),
    {k: snakemake.output[k] for k in ("predictions", "metrics")},
    snakemake.log[0],
)
