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
        # the caption template renders the table's own caption (params.caption)
        report("results/paper/{name}.tsv", caption="../report/paper_table.rst", category="Paper tables"),
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
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_tables.py"


rule paper_metrics:
    localrule: True
    input:
        unpack(paper_metrics_inputs),
    output:
        "results/paper/metrics.json",
    log:
        "logs/paper/metrics.log",
    benchmark:
        "benchmarks/paper/metrics.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_metrics.py"


rule paper_figure:
    localrule: True
    input:
        unpack(paper_inputs),
    output:
        "results/paper/{name}.png",
    wildcard_constraints:
        name=paper_names("figure"),
    log:
        "logs/paper/{name}.log",
    benchmark:
        "benchmarks/paper/{name}.tsv"
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
            caption=f"../report/{paper_registry.entry('fig8_training_curves').caption}",
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
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/paper_index.py"


rule paper:
    input:
        paper_targets(),
