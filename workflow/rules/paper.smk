# The paper target (patchcxr.paper): every table and figure the pipeline makes, gathered
# in results/paper/ with a caption each (README.md there; the same captions in the HTML
# report: `snakemake paper`, then `snakemake --report results/report.html`).


rule paper_tables:
    input:
        cohort="results/data/cohort.tsv",
        split="results/splits/classification.tsv",
        segmentation="results/segmentation/summary.tsv",
        biomarkers="results/biomarkers/tests.tsv",
        metrics=classifier_results("metrics.tsv", paper_models()),
        model_metadata=[f"results/classification/{m}/seed_{s}/metadata.json" for m, s in paper_runs()],
        predictions=classifier_results("predictions.tsv", paper_models()),
        adult_metrics=classifier_results("metrics_adult.tsv", paper_models()),
        comparison=(
            ["results/evaluation/global_vs_local.tsv"] if len(paper_models()) == 2 else []
        ),
        seeds=["results/evaluation/over_seeds.tsv"] if paper_models() else [],
        # the confound audit's class_source.tsv, probes.tsv and verdict.json (when it runs)
        audit=audit_files(),
        calibration=classifier_results("calibration.tsv", paper_models()),
        strata=classifier_results("strata.tsv", paper_models()),
        external=["results/external/summary.tsv"] if config["external"]["leave_one_source_out"] else [],
        sanity=["results/saliency/local/sanity.tsv"] if "local" in paper_models() else [],
    output:
        **{
            t.split("_", 1)[1]: report(
                f"results/paper/{t}.tsv", caption=f"../report/{PAPER_TABLES[t]}", category="Paper tables"
            )
            for t in paper_tables()
        },
        metrics="results/paper/metrics.json",
    log:
        "logs/paper/tables.log",
    benchmark:
        "benchmarks/paper/tables.tsv"
    params:
        # the (model, seed) of each classifier input, in the inputs' order
        runs=paper_runs(),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_tables.py"


rule paper_figure:
    input:
        lambda wc: paper_figures()[wc.name],
    output:
        "results/paper/{name}.png",
    wildcard_constraints:
        name="fig([1-7]|9)_[a-z_]+",
    log:
        "logs/paper/{name}.log",
    benchmark:
        "benchmarks/paper/{name}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/copy_file.py"


rule paper_training_curves:
    input:
        unpack(training_histories),
    output:
        report(
            "results/paper/fig8_training_curves.png",
            caption="../report/training_curves.rst",
            category="Paper figures",
        ),
    log:
        "logs/paper/training_curves.log",
    benchmark:
        "benchmarks/paper/training_curves.tsv"
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_training_curves.py"


rule paper_index:
    input:
        paper_documents(),
    output:
        "results/paper/README.md",
    log:
        "logs/paper/index.log",
    benchmark:
        "benchmarks/paper/index.tsv"
    params:
        # the captions' text (not their paths: a moved checkout is the same run)
        captions={
            **{f"{t}.tsv": caption_text(PAPER_TABLES[t]) for t in paper_tables()},
            **{
                f"{f}.png": caption_text(PAPER_FIGURE_CAPTIONS[f])
                for f in [*paper_figures(), "fig8_training_curves"]
            },
        },
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_index.py"


rule paper:
    input:
        paper_targets(),
