# Experiment tracking (MLflow; patchcxr.tracking): one parent run per pipeline
# configuration, under which every training and evaluation job opens a nested run.


rule start_pipeline_run:
    localrule: True
    output:
        "results/tracking/pipeline_run.json",
    log:
        "logs/tracking/pipeline_run.log",
    benchmark:
        "benchmarks/tracking/pipeline_run.tsv"
    params:
        tracking=canonical(config["tracking"]),
        # a new configuration opens a new pipeline run (jobs take this file as ancient(),
        # so a new parent never reruns finished work)
        config=canonical(config),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/start_pipeline_run.py"


# The parent run spans the pipeline: start_pipeline_run leaves it running, the end of the
# workflow closes it (close_pipeline_run, common.smk).
onsuccess:
    close_pipeline_run(failed=False)


onerror:
    close_pipeline_run(failed=True)
