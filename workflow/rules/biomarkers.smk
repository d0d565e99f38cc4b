# Lung biomarkers and their statistics (patchcxr.biomarkers; issue 5): features per
# prediction shard, joined; tests across classes; one rule per figure, from the tables.


rule biomarker_features:
    wildcard_constraints:
        shard=r"\d+",
    input:
        manifest="results/data/manifest.tsv",
        cohort="results/data/cohort.tsv",
        qc="results/masks/shards/{shard}.tsv",
        # the classifier's input settings (size, preprocessing, mask source)
        input_settings=INPUT_SETTINGS,
    output:
        features="results/biomarkers/shards/{shard}.tsv",
        histograms="results/biomarkers/shards/{shard}.hist.tsv",
    log:
        "logs/biomarkers/features_{shard}.log",
    benchmark:
        "benchmarks/biomarkers/features_{shard}.tsv"
    params:
        settings=canonical(config["biomarkers"]),
        # the patch analysis draws the classifier's patches (size, centre and border modes)
        classifier_train=canonical(config["classification"]["train"]),
    conda:
        "../../envs/stats.yaml"
    script:
        "../scripts/biomarker_features.py"


rule collect_biomarkers:
    localrule: True
    input:
        unpack(biomarker_shards),
        manifest="results/data/manifest.tsv",
        qc="results/masks/qc.tsv",
    output:
        features="results/biomarkers/features.tsv",
        histograms="results/biomarkers/histograms.tsv",
        examples="results/biomarkers/examples.tsv",
    log:
        "logs/biomarkers/collect.log",
    benchmark:
        "benchmarks/biomarkers/collect.tsv"
    conda:
        "../../envs/stats.yaml"
    script:
        "../scripts/collect_biomarkers.py"


rule test_biomarkers:
    input:
        features="results/biomarkers/features.tsv",
    output:
        "results/biomarkers/tests.tsv",
    log:
        "logs/biomarkers/tests.log",
    benchmark:
        "benchmarks/biomarkers/tests.tsv"
    params:
        label=config["biomarkers"]["label"],
        reference=config["biomarkers"]["reference"],
        min_n=config["statistics"]["min_patients"],
        seed=config["biomarkers"]["seed"],
        bootstrap=config["biomarkers"]["bootstrap"],
    conda:
        "../../envs/stats.yaml"
    script:
        "../scripts/test_biomarkers.py"


rule plot_biomarker_features:
    localrule: True
    input:
        features="results/biomarkers/features.tsv",
        tests="results/biomarkers/tests.tsv",
    output:
        report(
            "results/biomarkers/figures/features.png",
            caption=CAPTIONED,
            category="Biomarkers",
        ),
    log:
        "logs/biomarkers/plot_features.log",
    benchmark:
        "benchmarks/biomarkers/plot_features.tsv"
    params:
        caption=caption_text("biomarkers_features.rst"),
        banner=DATA_BANNER,
        figure="features",
        label=config["biomarkers"]["label"],
        reference=config["biomarkers"]["reference"],
        min_n=config["statistics"]["min_patients"],
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_biomarkers.py"


# The other three figures: the same script and settings, another input and figure.
use rule plot_biomarker_features as plot_ctr_scatter with:
    localrule: True
    input:
        features="results/biomarkers/features.tsv",
    output:
        report(
            "results/biomarkers/figures/ctr_scatter.png",
            caption=CAPTIONED,
            category="Biomarkers",
        ),
    log:
        "logs/biomarkers/plot_ctr_scatter.log",
    benchmark:
        "benchmarks/biomarkers/plot_ctr_scatter.tsv"
    params:
        caption=caption_text("biomarkers_ctr_scatter.rst"),
        banner=DATA_BANNER,
        figure="ctr_scatter",


use rule plot_biomarker_features as plot_lung_histograms with:
    localrule: True
    input:
        histograms="results/biomarkers/histograms.tsv",
    output:
        report(
            "results/biomarkers/figures/histograms.png",
            caption=CAPTIONED,
            category="Biomarkers",
        ),
    log:
        "logs/biomarkers/plot_histograms.log",
    benchmark:
        "benchmarks/biomarkers/plot_histograms.tsv"
    params:
        caption=caption_text("biomarkers_histograms.rst"),
        banner=DATA_BANNER,
        figure="histograms",


use rule plot_biomarker_features as plot_segmentation_examples with:
    localrule: True
    input:
        examples="results/biomarkers/examples.tsv",
    output:
        report(
            "results/biomarkers/figures/examples.png",
            caption=CAPTIONED,
            category="Biomarkers",
        ),
    log:
        "logs/biomarkers/plot_examples.log",
    benchmark:
        "benchmarks/biomarkers/plot_examples.tsv"
    params:
        caption=caption_text("biomarkers_examples.rst"),
        banner=DATA_BANNER,
        figure="examples",
