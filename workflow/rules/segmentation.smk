# Segmentation (patchcxr.segmentation; issue 4): train each configured network with and
# without the paper's preprocessing, evaluate on the held-out images, predict masks for
# every manifest image. Under splits.segmentation.classified: crossfit each seed is one run
# per fold (seed_<seed>-f<fold>), trained without that fold's classified patients; the
# fold's films are masked and scored by it (results/splits/mask_folds.tsv).


rule train_segmentation:
    wildcard_constraints:
        prep="equalised|minmax",
        seed=r"\d+(-f\d+)?",
    input:
        unpack(tracking_inputs),
        manifest="results/data/manifest.tsv",
        split="results/splits/segmentation.tsv",
    output:
        model="results/segmentation/{model}/{prep}/seed_{seed}/model.pt",
        metadata="results/segmentation/{model}/{prep}/seed_{seed}/metadata.json",
        history="results/segmentation/{model}/{prep}/seed_{seed}/history.tsv",
    log:
        "logs/segmentation/train_{model}_{prep}_seed_{seed}.log",
    benchmark:
        "benchmarks/segmentation/train_{model}_{prep}_seed_{seed}.tsv"
    params:
        model_cfg=segmentation_model_cfg,
        # the training settings with this run's seed (one run per segmentation.train.seeds)
        train=segmentation_train_params,
        # the cross-fitting fold this run holds out (0: the one segmenter of a seed)
        fold=segmentation_fold,
        preprocessing=segmentation_preprocessing,
        tracking=canonical(config["tracking"]),
        resume_dir="results/segmentation/{model}/{prep}/seed_{seed}/resume",
    threads: 2
    resources:
        # machines set this in profiles/ (e.g. --set-resources train_segmentation:device=cuda)
        device="auto",
        # fp32 even where bf16 is native (not auto): the segmentation figures and the masks
        # every later stage reads were measured in fp32, and bf16 segmentation training has
        # not been compared with them; bf16/fp16 autocast remain a machine's choice (profiles/gpu)
        precision="fp32",
        # FC-DenseNet recomputation: model (the model's option), on or off (same results;
        # off is faster where memory allows, profiles/gpu)
        memory_efficient="model",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_segmentation.py"


rule evaluate_segmentation:
    input:
        unpack(segmentation_models),
        unpack(tracking_inputs),
        manifest="results/data/manifest.tsv",
        split="results/splits/segmentation.tsv",
    output:
        scores="results/segmentation/scores.tsv",
        summary="results/segmentation/summary.tsv",
        tests="results/segmentation/tests.tsv",
    log:
        "logs/segmentation/evaluate.log",
    benchmark:
        "benchmarks/segmentation/evaluate.tsv"
    params:
        bootstrap=config["segmentation"]["bootstrap"],
        tracking=canonical(config["tracking"]),
    threads: 2
    resources:
        device="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/evaluate_segmentation.py"


rule plot_segmentation:
    localrule: True
    input:
        scores="results/segmentation/scores.tsv",
    output:
        report(
            "results/segmentation/figures/jaccard.png",
            caption=CAPTIONED,
            category="Segmentation",
        ),
    log:
        "logs/segmentation/plot.log",
    benchmark:
        "benchmarks/segmentation/plot.tsv"
    params:
        caption=caption_text("segmentation_jaccard.rst"),
        banner=DATA_BANNER,
        min_n=config["statistics"]["min_patients"],
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_segmentation.py"


rule classified_dice:
    localrule: True
    input:
        scores="results/segmentation/scores.tsv",
        split="results/splits/classification.tsv",
    output:
        "results/segmentation/classified_dice.tsv",
    log:
        "logs/segmentation/classified_dice.log",
    benchmark:
        "benchmarks/segmentation/classified_dice.tsv"
    params:
        # the network whose masks the classifier reads (mask_model_paths)
        model=config["segmentation"]["mask_model"],
        preprocessing="equalised",
        mask_seed=train_seeds("segmentation")[0],  # every fold of it, when cross-fitted
        labels=config["classification"]["train"]["labels"],
        bootstrap=config["segmentation"]["bootstrap"],
        permutations=config["statistics"]["permutations"],
        min_patients=config["statistics"]["min_patients"],
        seed=config["splits"]["seed"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/classified_dice.py"


rule predict_masks:
    wildcard_constraints:
        shard=r"\d+",
    input:
        manifest="results/data/manifest.tsv",
        # the mask model trained with preprocessing, first seed of segmentation.train.seeds
        # (one file per cross-fitting fold), and the fold of each classified film
        models=mask_model_paths(),
        mask_folds="results/splits/mask_folds.tsv",
    output:
        rows="results/masks/shards/{shard}.tsv",
        files=directory("results/masks/shards/{shard}"),
    log:
        "logs/masks/predict_{shard}.log",
    benchmark:
        "benchmarks/masks/predict_{shard}.tsv"
    params:
        predict=canonical(config["segmentation"]["predict"]),
    threads: 2
    resources:
        device="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/predict_masks.py"


rule collect_masks:
    localrule: True
    input:
        mask_shards,
    output:
        "results/masks/qc.tsv",
    log:
        "logs/masks/collect.log",
    benchmark:
        "benchmarks/masks/collect.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/collect_masks.py"
