# Confound audit (patchcxr.audit, method.md §5.6; issue 18): does the classifier read the
# disease or the source? One source probe per classifier mode and view (the classifier's
# own trainer, trained to predict the source), then the class x source table, the probe
# table with patient intervals and the verdict, and their figure.


rule probe_source:
    wildcard_constraints:
        mode="local|global",
        view="lung|outside|mask",
    input:
        unpack(weights_inputs),
        inputs="results/classification/inputs.tsv",
        input_settings=INPUT_SETTINGS,
        split="results/splits/classification.tsv",
        manifest="results/data/manifest.tsv",
    # the probe's model.pt, metadata.json and history.tsv lie beside its predictions (none
    # when the inputs come from one source: nothing to tell apart, nothing trained)
    output:
        predictions="results/audit/{mode}/{view}/predictions.tsv",
        table="results/audit/{mode}/{view}/inputs.tsv",
        view=directory("results/audit/{mode}/{view}/view"),
    log:
        "logs/audit/probe_{mode}_{view}.log",
    benchmark:
        "benchmarks/audit/probe_{mode}_{view}.tsv"
    params:
        # the classifier's own training settings (first seed), audit.epochs in place of its epochs
        train=audit_train_params,
        # the classifier's initialisation: route, file and sha256 (weights_inputs)
        weights=classifier_weights(),
        k=config["audit"]["k"],
        folds=config["audit"]["folds"],
        # the probe writes here (its resume state under resume/)
        out_dir="results/audit/{mode}/{view}",
    threads: 2
    resources:
        device="auto",
        precision="auto",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/probe_source.py"


rule summarise_audit:
    localrule: True
    input:
        predictions=audit_predictions(),
        inputs="results/classification/inputs.tsv",
        cohort="results/data/cohort.tsv",
    output:
        class_source="results/audit/class_source.tsv",
        probes="results/audit/probes.tsv",
        verdict="results/audit/verdict.json",
    log:
        "logs/audit/summary.log",
    benchmark:
        "benchmarks/audit/summary.tsv"
    params:
        # the (mode, view) of each input, in the inputs' order
        probes=audit_probes(),
        labels=config["classification"]["train"]["labels"],
        bootstrap=config["audit"]["bootstrap"],
        seed=train_seeds("classification")[0],
        permutations=config["statistics"]["permutations"],
        alpha=config["audit"]["alpha"],
        equivalence=config["audit"]["equivalence"],
        purity=config["audit"]["purity"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/summarise_audit.py"


rule within_class:
    localrule: True
    input:
        # the first seed's test predictions of each audited classifier (audit.models)
        predictions=expand(
            "results/evaluation/{model}/seed_{seed}/predictions.tsv",
            model=config["audit"]["models"],
            seed=train_seeds("classification")[0],
        ),
    output:
        "results/audit/within_class.tsv",
    log:
        "logs/audit/within_class.log",
    benchmark:
        "benchmarks/audit/within_class.tsv"
    params:
        models=config["audit"]["models"],
        labels=config["classification"]["train"]["labels"],
        permutations=config["statistics"]["permutations"],
        min_patients=config["statistics"]["min_patients"],
        seed=train_seeds("classification")[0],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/within_class.py"


rule plot_audit:
    localrule: True
    input:
        class_source="results/audit/class_source.tsv",
        probes="results/audit/probes.tsv",
    output:
        report(
            "results/audit/figure.png",
            caption=CAPTIONED,
            category="Confound audit",
        ),
    log:
        "logs/audit/plot.log",
    benchmark:
        "benchmarks/audit/plot.tsv"
    params:
        caption=caption_text("audit.rst"),
        banner=DATA_BANNER,
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/plot_audit.py"
