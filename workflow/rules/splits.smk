# Splits as artefacts: patient-grouped, stratified, seeded (patchcxr.data.splits).


rule make_splits:
    localrule: True
    input:
        cohort="results/data/cohort.tsv",
        manifest="results/data/manifest.tsv",
    output:
        classification="results/splits/classification.tsv",
        segmentation="results/splits/segmentation.tsv",
        # the segmenter that masks each classified film (one, or its cross-fitting fold)
        mask_folds="results/splits/mask_folds.tsv",
    log:
        "logs/splits/make_splits.log",
    benchmark:
        "benchmarks/splits/make_splits.tsv"
    params:
        splits=canonical(config["splits"]),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/make_splits.py"
