# Downloads: one rule per source that has a `download` spec and no local `path`
# (download_<name>), plus the paper's image list. Resume, retries, checksum or file
# count, atomic placement and safe extraction are in patchcxr.data.download.

for _name, _spec in download_specs().items():

    rule:
        name:
            f"download_{_name}"
        output:
            directory(f"resources/raw/{_name}"),
        log:
            f"logs/download/{_name}.log",
        benchmark:
            f"benchmarks/download/{_name}.tsv"
        params:
            name=_name,
            spec=_spec,
        retries: 1
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/download_source.py"


rule download_paper_metadata:
    localrule: True
    output:
        ensure("resources/paper/metadata.xls", sha256=config["data"]["paper_metadata"]["sha256"]),
    log:
        "logs/download/paper_metadata.log",
    benchmark:
        "benchmarks/download/paper_metadata.tsv"
    params:
        url=config["data"]["paper_metadata"]["url"],
        sha256=config["data"]["paper_metadata"]["sha256"],
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_file.py"
