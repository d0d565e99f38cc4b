# Classification (patchcxr.classification, patchcxr.evaluation; issue 6): cached masked
# inputs per mask shard, the local (patch) and global classifiers, K-patch predictions on
# the test split, evaluation and the global-versus-local comparison.


rule build_classifier_inputs:
    wildcard_constraints:
        shard=r"\d+",
    input:
        manifest="results/data/manifest.tsv",
        cohort="results/data/cohort.tsv",
        masks="results/masks/shards/{shard}.tsv",
    output:
        rows="results/classification/inputs/{shard}.tsv",
        files=directory("results/classification/inputs/{shard}"),
    log:
        "logs/classification/inputs_{shard}.log",
    params:
        size=config["classification"]["input_size"],
        preprocessing=canonical(config["preprocessing"]),
        mask_source=config["segmentation"]["mask_source"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/build_classifier_inputs.py"


rule collect_classifier_inputs:
    input:
        classifier_input_shards,
    output:
        "results/classification/inputs.tsv",
    log:
        "logs/classification/collect_inputs.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/concat_tables.py"


rule train_classifier:
    wildcard_constraints:
        model="local|global",
    input:
        unpack(tracking_inputs),
        inputs="results/classification/inputs.tsv",
        split="results/splits/classification.tsv",
        manifest="results/data/manifest.tsv",
    output:
        model="results/classification/{model}/model.pt",
        metadata="results/classification/{model}/metadata.json",
        history="results/classification/{model}/history.tsv",
    log:
        "logs/classification/train_{model}.log",
    params:
        train=canonical(config["classification"]["train"]),
        input_size=config["classification"]["input_size"],
        preprocessing=canonical(config["preprocessing"]),
        mask_source=config["segmentation"]["mask_source"],
        weights=canonical(config["classification"]["weights"]),
        tracking=canonical(config["tracking"]),
        resume_dir="results/classification/{model}/resume",
    threads: 2
    resources:
        device="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_classifier.py"


rule predict_classifier:
    wildcard_constraints:
        model="local|global",
    input:
        model="results/classification/{model}/model.pt",
        inputs="results/classification/inputs.tsv",
        split="results/splits/classification.tsv",
    output:
        "results/evaluation/{model}/predictions.tsv",
    log:
        "logs/evaluation/predict_{model}.log",
    params:
        k=config["classification"]["inference"]["k"],
        mode=config["classification"]["inference"]["mode"],
        seed=config["classification"]["train"]["seed"],
    threads: 2
    resources:
        device="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/predict_classifier.py"


rule evaluate_classifier:
    wildcard_constraints:
        model="local|global",
    input:
        unpack(tracking_inputs),
        predictions="results/evaluation/{model}/predictions.tsv",
        model="results/classification/{model}/model.pt",
        split="results/splits/classification.tsv",
        manifest="results/data/manifest.tsv",
    output:
        metrics="results/evaluation/{model}/metrics.tsv",
        confusion="results/evaluation/{model}/confusion.tsv",
        per_source="results/evaluation/{model}/per_source.tsv",
        per_mask_source="results/evaluation/{model}/per_mask_source.tsv",
    log:
        "logs/evaluation/evaluate_{model}.log",
    params:
        vote=config["classification"]["inference"]["vote"],
        bootstrap=config["classification"]["inference"]["bootstrap"],
        seed=config["classification"]["train"]["seed"],
        tracking=canonical(config["tracking"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/evaluate_classifier.py"


rule plot_confusion:
    input:
        "results/evaluation/{model}/confusion.tsv",
    output:
        report(
            "results/evaluation/{model}/confusion.png",
            caption="../report/confusion.rst",
            category="Classification",
        ),
    log:
        "logs/evaluation/plot_confusion_{model}.log",
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_confusion.py"


rule compare_classifiers:
    input:
        metrics=expand("results/evaluation/{model}/metrics.tsv", model=config["classification"]["models"]),
        predictions=expand("results/evaluation/{model}/predictions.tsv", model=config["classification"]["models"]),
    output:
        "results/evaluation/global_vs_local.tsv",
    log:
        "logs/evaluation/compare.log",
    params:
        models=config["classification"]["models"],
        settings={
            "vote": config["classification"]["inference"]["vote"],
            "bootstrap": config["classification"]["inference"]["bootstrap"],
            "seed": config["classification"]["train"]["seed"],
        },
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/compare_classifiers.py"


rule compute_saliency:
    input:
        model="results/classification/local/model.pt",
        inputs="results/classification/inputs.tsv",
        split="results/splits/classification.tsv",
        manifest="results/data/manifest.tsv",
    output:
        table="results/saliency/local/saliency.tsv",
        files=directory("results/saliency/local/maps"),
    log:
        "logs/saliency/local.log",
    params:
        saliency=canonical(config["saliency"]),
        mode=config["classification"]["inference"]["mode"],
        seed=config["classification"]["train"]["seed"],
    threads: 2
    resources:
        device="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/compute_saliency.py"


rule plot_saliency:
    input:
        table="results/saliency/local/saliency.tsv",
        maps="results/saliency/local/maps",
    output:
        report(
            "results/saliency/local/figure.png",
            caption="../report/saliency.rst",
            category="Classification",
        ),
    log:
        "logs/saliency/plot.log",
    params:
        per_row=5,
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_saliency.py"
