# Shared helpers of the workflow: configuration validation and the target list.
# Python only, no rules (Snakemake best practice: helpers separate from rules).

from snakemake.utils import validate


# Validate first and fill in the schema's defaults: a misspelt key or a value out of range
# stops the workflow here, naming the key, before any job is scheduled.
validate(config, schema="../schemas/config.schema.yaml")

SYNTHETIC_SOURCES = ["jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen"]


def synthetic_targets():
    """Folders of the synthetic sources the configuration asks for."""
    return expand(
        ["results/synthetic/{source}", "results/synthetic/ground_truth/{source}"],
        source=config["synthetic"]["sources"],
    )


def final_targets():
    """Targets of the default target; the list grows as stages land."""
    return synthetic_targets()
