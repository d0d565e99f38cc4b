# The paper target (patchcxr.paper): every table and figure the pipeline makes, gathered
# in results/paper/ with a caption each (README.md there; the same captions in the HTML
# report: `snakemake paper`, then `snakemake --report results/report.html`). What each file
# reads, when it applies and its caption come from the registry (patchcxr.paper.registry,
# asked through common.smk's paper section): a new table is a registry entry, its builder
# and its caption file, nothing here.


rule paper_tables:
    localrule: True
    input:
        unpack(paper_inputs),
    output:
        table="results/paper/{name}.tsv",
        # the report shows the table as a page (title, caption, rows, the TSV to download),
        # listed by the table's number
        page=report(
            "results/report/{name}.html",
            caption=CAPTIONED,
            category="Paper tables",
            labels=paper_labels,
        ),
    wildcard_constraints:
        name=paper_names("table"),
    log:
        "logs/paper/{name}.log",
    benchmark:
        "benchmarks/paper/{name}.tsv"
    params:
        # the (model, seed) of each classifier input, in the inputs' order
        runs=paper_runs(),
        caption=table_caption,
        title=paper_title,
        banner=DATA_BANNER,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_tables.py"


rule paper_metrics:
    localrule: True
    input:
        unpack(paper_metrics_inputs),
    output:
        metrics="results/paper/metrics.json",
        # the few numbers `dvc metrics show` prints
        headline="results/paper/headline.json",
    log:
        "logs/paper/metrics.log",
    benchmark:
        "benchmarks/paper/metrics.tsv"
    params:
        synthetic=synthetic_inputs(config),
        banner=DATA_BANNER,
        mask_model=config["segmentation"]["mask_model"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_metrics.py"


rule paper_figure:
    localrule: True
    input:
        unpack(paper_inputs),
    output:
        report("results/paper/{name}.png", caption=CAPTIONED, category="Paper figures", labels=paper_labels),
    wildcard_constraints:
        name=paper_names("figure"),
    log:
        "logs/paper/{name}.log",
    benchmark:
        "benchmarks/paper/{name}.tsv"
    params:
        caption=table_caption,
        banner=DATA_BANNER,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/copy_file.py"


rule paper_training_curves:
    localrule: True
    input:
        unpack(training_histories),
    output:
        report(
            "results/paper/fig8_training_curves.png",
            caption=CAPTIONED,
            category="Paper figures",
            labels=paper_labels(name="fig8_training_curves"),
        ),
    log:
        "logs/paper/training_curves.log",
    benchmark:
        "benchmarks/paper/training_curves.tsv"
    params:
        caption=paper_caption("fig8_training_curves"),
        banner=DATA_BANNER,
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_training_curves.py"


rule paper_index:
    localrule: True
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
        captions=paper_captions(),
        banner=DATA_BANNER,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_index.py"


rule report_about:
    localrule: True
    output:
        report("results/report/about.html", caption=CAPTIONED, category="About this run"),
    log:
        "logs/paper/about.log",
    benchmark:
        "benchmarks/paper/about.tsv"
    params:
        # the configuration (its keys sorted: overlay order is no change) and its YAML text
        config=canonical(config),
        caption="The run in words: sources, classes, splits, networks, recipes, seeds and analyses.",
        banner=DATA_BANNER,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/report_about.py"


rule paper:
    input:
        paper_targets(),
