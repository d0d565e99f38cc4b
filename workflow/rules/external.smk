# External validation (patchcxr.data.splits.leave_one_source_out; issue 18): with
# external.leave_one_source_out, one classifier per cohort source that the other sources
# can stand in for (they hold every class it holds), trained on the others and tested on
# it whole, beside the internal test split's figures on the same source.


checkpoint plan_external:
    localrule: True
    input:
        cohort="results/data/cohort.tsv",
    output:
        plan="results/external/plan.tsv",
        splits=directory("results/external/splits"),
    log:
        "logs/external/plan.log",
    benchmark:
        "benchmarks/external/plan.tsv"
    params:
        fractions={k: config["splits"]["classification"][k] for k in ("train", "val", "test")},
        seed=config["splits"]["seed"],
        labels=config["classification"]["train"]["labels"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/plan_external.py"


# The three rules below are the classifier's own (classification.smk), on the held-out
# source's split and without tracking: only their files and the run's seed differ.
use rule train_classifier as train_external with:
    wildcard_constraints:
        model="local|global",
    input:
        unpack(weights_inputs),
        inputs="results/classification/inputs.tsv",
        input_settings=INPUT_SETTINGS,
        split="results/external/splits/{source}.tsv",
        manifest="results/data/manifest.tsv",
    output:
        model="results/external/{source}/{model}/model.pt",
        metadata="results/external/{source}/{model}/metadata.json",
        history="results/external/{source}/{model}/history.tsv",
    log:
        "logs/external/train_{source}_{model}.log",
    benchmark:
        "benchmarks/external/train_{source}_{model}.tsv"
    params:
        # the classifier's training settings of its first seed
        train=first_seed_train_params,
        tracking=canonical(config["tracking"] | {"enabled": False}),
        resume_dir="results/external/{source}/{model}/resume",


use rule predict_classifier as predict_external with:
    wildcard_constraints:
        model="local|global",
    input:
        model="results/external/{source}/{model}/model.pt",
        inputs="results/classification/inputs.tsv",
        split="results/external/splits/{source}.tsv",
    output:
        test="results/external/{source}/{model}/predictions.tsv",
        val="results/external/{source}/{model}/predictions_val.tsv",
    log:
        "logs/external/predict_{source}_{model}.log",
    benchmark:
        "benchmarks/external/predict_{source}_{model}.tsv"
    params:
        seed=train_seeds("classification")[0],


use rule evaluate_classifier as evaluate_external with:
    wildcard_constraints:
        model="local|global",
    input:
        predictions="results/external/{source}/{model}/predictions.tsv",
        predictions_val="results/external/{source}/{model}/predictions_val.tsv",
        model="results/external/{source}/{model}/model.pt",
        split="results/external/splits/{source}.tsv",
        manifest="results/data/manifest.tsv",
    output:
        metrics="results/external/{source}/{model}/metrics.tsv",
        confusion="results/external/{source}/{model}/confusion.tsv",
        strata="results/external/{source}/{model}/strata.tsv",
        calibration="results/external/{source}/{model}/calibration.tsv",
        reliability="results/external/{source}/{model}/reliability.tsv",
        metrics_adult="results/external/{source}/{model}/metrics_adult.tsv",
    log:
        "logs/external/evaluate_{source}_{model}.log",
    benchmark:
        "benchmarks/external/evaluate_{source}_{model}.tsv"
    params:
        seed=train_seeds("classification")[0],
        tracking=canonical(config["tracking"] | {"enabled": False}),


rule summarise_external:
    localrule: True
    input:
        unpack(external_results),
        plan="results/external/plan.tsv",
    output:
        "results/external/summary.tsv",
    log:
        "logs/external/summary.log",
    benchmark:
        "benchmarks/external/summary.tsv"
    params:
        models=config["external"]["models"],
        seed=train_seeds("classification")[0],
        n_boot=config["classification"]["inference"]["bootstrap"],
        min_patients=config["statistics"]["min_patients"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/summarise_external.py"
