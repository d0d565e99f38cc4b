# Synthetic sources: CXR-like phantoms written in each real source's original format and
# layout, with ground truth beside them (patchcxr.synthetic).


rule make_synthetic:
    wildcard_constraints:
        source="|".join(SYNTHETIC_SOURCES),
    output:
        source=directory("results/synthetic/{source}"),
        truth=directory("results/synthetic/ground_truth/{source}"),
    log:
        "logs/synthetic/{source}.log",
    benchmark:
        "benchmarks/synthetic/{source}.tsv"
    params:
        synthetic=canonical(config["synthetic"]),
    conda:
        "../../envs/imaging.yaml"
    script:
        "../scripts/make_synthetic.py"
