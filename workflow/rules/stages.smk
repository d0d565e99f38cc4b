# One target rule per stage of workflow/stages.yaml (`snakemake --cores N stage_<name>`),
# as dvc.yaml runs them: each names the outputs of its stage for the configured sources and
# models (the target functions in common.smk).

for _stage in STAGES:

    rule:
        name:
            f"stage_{_stage}"
        input:
            stage_targets(_stage),
