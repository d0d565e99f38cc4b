# Data: index each source (every file accounted for), plan the shards (checkpoint),
# harmonise shard by shard, join everything into the manifest with the intake accounting and
# the conflicts, select the cohort (patchcxr.data; issues 3 and 29).


rule index_source:
    localrule: True
    input:
        unpack(index_inputs),
    output:
        index="results/data/index/{source}.tsv",
        quarantine="results/data/index/{source}.quarantine.tsv",
        files="results/data/index/{source}.files.tsv",
        conflicts="results/data/index/{source}.conflicts.tsv",
    log:
        "logs/data/index_{source}.log",
    benchmark:
        "benchmarks/data/index_{source}.tsv"
    params:
        spec=resolved_source,
        labels=canonical(config["labels"]),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/index_source.py"


checkpoint plan_shards:
    localrule: True
    input:
        expand("results/data/index/{source}.tsv", source=active_sources()),
    output:
        "results/data/shard_plan.tsv",
    log:
        "logs/data/plan_shards.log",
    benchmark:
        "benchmarks/data/plan_shards.tsv"
    params:
        names=active_sources(),
        shard_size=config["data"]["shard_size"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/plan_shards.py"


rule harmonise_shard:
    wildcard_constraints:
        shard=r"\d+",
    input:
        index="results/data/index/{source}.tsv",
    output:
        rows="results/data/shards/{source}/{shard}.tsv",
        quarantine="results/data/shards/{source}/{shard}.quarantine.tsv",
        images=directory("results/data/images/{source}/{shard}"),
        masks=directory("results/data/masks/{source}/{shard}"),
    log:
        "logs/data/harmonise_{source}_{shard}.log",
    benchmark:
        "benchmarks/data/harmonise_{source}_{shard}.tsv"
    params:
        shard_size=config["data"]["shard_size"],
        intake={k: config["data"][k] for k in ("max_pixels", "intake")},
        mask_foreground=lambda w: config["sources"][w.source].get("mask_foreground", 255),
        mask_rendition=lambda w: bool(config["sources"][w.source].get("masks_path")),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/harmonise_shard.py"


checkpoint build_manifest:
    localrule: True
    input:
        unpack(manifest_inputs),
    output:
        manifest="results/data/manifest.tsv",
        quarantine="results/data/quarantine.tsv",
        intake="results/data/intake.tsv",
        conflicts="results/data/conflicts.tsv",
    log:
        "logs/data/build_manifest.log",
    benchmark:
        "benchmarks/data/build_manifest.tsv"
    params:
        order=active_sources(),
        strict=config["data"]["strict"],
        schema=f"{workflow.basedir}/workflow/schemas/manifest.schema.yaml",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/build_manifest.py"


rule select_cohort:
    localrule: True
    input:
        unpack(cohort_inputs),
    output:
        cohort="results/data/cohort.tsv",
        missing="results/data/cohort_missing.tsv",
    log:
        "logs/data/select_cohort.log",
    benchmark:
        "benchmarks/data/select_cohort.tsv"
    params:
        cohort=config["data"]["cohort"],
        exclude_paediatric=config["labels"]["exclude_paediatric"],
        order=active_sources(),
        formats={name: config["sources"][name]["format"] for name in active_sources()},
        sources=config["data"]["cohort_sources"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/select_cohort.py"
