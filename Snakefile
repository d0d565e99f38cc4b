# patchcxr: Oh, Park & Ye, "Deep Learning COVID-19 Features on CXR using Limited Training
# Data Sets" (IEEE TMI 2020), as a reproducible workflow. This file is the table of
# contents: version guard, configuration, stages, default target.
#
#   snakemake --cores all --use-conda                           # real data, paper settings
#   snakemake --cores 2 --configfile config/demo.yaml           # built-in synthetic data

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# ----------------------------------------------------------------------------- stages
# common.smk validates the configuration (workflow/schemas/config.schema.yaml) before any
# rule is defined, and holds the helpers the rules share.
include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/biomarkers.smk"
include: "workflow/rules/classification.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/stages.smk"


# ----------------------------------------------------------------------------- local rules
# Rules marked `localrule: True` in their stage file run, on a cluster (profiles/slurm),
# on the submitting machine instead of as jobs of their own: each reads a few small
# tables, lists a folder or copies a file, seconds of work that a queue and a Snakemake
# start per job would turn into minutes (tests/test_cluster.py).


# ----------------------------------------------------------------------------- target
# Defined here, not in an included file: Snakemake restores the default target after each
# include, so an included `rule all` would be ignored.
rule all:
    input:
        final_targets(),
    default_target: True
