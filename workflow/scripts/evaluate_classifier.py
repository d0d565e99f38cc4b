"""Rule evaluate_classifier: metrics with bootstrap intervals, confusion, per-source view."""

import json
from typing import TYPE_CHECKING, Any

from patchcxr.evaluation.calibration import calibration_tables, training_prior
from patchcxr.evaluation.metrics import confusion_long, metrics_long
from patchcxr.evaluation.strata import strata_table
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging
from patchcxr.models.state import load_state
from patchcxr.tracking import mlflow_run, run_settings

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    inputs: dict[str, str],
    model_name: str,
    vote: str,
    n_boot: int,
    seed: int,
    min_patients: int,
    calibration_bins: int,
    tracking: dict[str, Any],
    outputs: dict[str, str],
    log: str,
) -> None:
    setup_logging(log)
    state = load_state(inputs["model"])
    names = list(state["classes"])
    pred = read_tsv(inputs["predictions"], typed=True)
    y, p = pred["true_index"].to_numpy(), pred[f"pred_{vote}_index"].to_numpy()
    adult = (pred["age_group"] == "adult").to_numpy()
    # ROC AUC ranks the films by the mean patch probability of each class
    scores = pred[[f"prob_{n}" for n in names]].to_numpy(float)
    groups = pred["patient_id"].to_numpy()
    tables = {
        # intervals resample patients, the unit of the split
        "metrics": metrics_long(
            y, p, names, groups=groups, n_boot=n_boot, seed=seed, scores=scores, min_patients=min_patients
        ).assign(vote=vote),
        # the sensitivity analysis without children's films (the paper's sheet holds some)
        "metrics_adult": metrics_long(
            y[adult],
            p[adult],
            names,
            groups=groups[adult],
            n_boot=n_boot,
            seed=seed,
            scores=scores[adult],
            min_patients=min_patients,
        ).assign(vote=vote),
        "confusion": confusion_long(y, p, names),
        # by source, view, age group and band, sex and mask source (predicted, ground truth
        # as a sensitivity option, atlas fallback), each with its patients' intervals
        "strata": strata_table(
            pred, read_tsv(inputs["manifest"]), names, vote=vote, n_boot=n_boot, seed=seed, min_patients=min_patients
        ),
    }
    # the soft vote's probabilities as they come and temperature-scaled on the validation films
    # and moved to the training films' class prior first (the classifier trains on
    # class-balanced draws: its probabilities assume equal classes)
    tables["calibration"], tables["reliability"] = calibration_tables(
        read_tsv(inputs["predictions_val"], typed=True),
        pred,
        names,
        bins=calibration_bins,
        n_boot=n_boot,
        seed=seed,
        min_patients=min_patients,
        prior=training_prior(read_tsv(inputs["split"]), json.loads(state["settings"])["labels"], names),
    )
    for key, df in tables.items():
        write_tsv(outputs[key], df)
    named = {k: v for k, v in inputs.items() if k in ("manifest", "split", "predictions", "model")}
    settings = run_settings(tracking, inputs.get("pipeline"), named, rule=snakemake.rule)
    params = {"model": model_name, "vote": vote, "bootstrap": n_boot, "seed": seed, "n_test": len(pred)}
    with mlflow_run(settings, f"evaluate-classifier-{model_name}-seed_{seed}", params) as run:
        if run is not None:
            m = tables["metrics"]
            run.log_table_metrics({f"{r['class']}.{r['metric']}": r["value"] for _, r in m.iterrows()})
            for key in tables:
                run.log_artifact(outputs[key])


main(
    dict(snakemake.input.items()),
    snakemake.wildcards.model,
    snakemake.params.vote,
    int(snakemake.params.bootstrap),
    int(snakemake.params.seed),
    int(snakemake.params.min_patients),
    int(snakemake.params.calibration_bins),
    dict(snakemake.params.tracking),
    dict(snakemake.output.items()),
    snakemake.log[0],
)
