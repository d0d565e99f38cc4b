"""Rule train_classifier: the local (patch) or global classifier."""

from typing import TYPE_CHECKING, Any

from patchcxr.classification.settings import InputSettings, settings_from
from patchcxr.classification.train import train_classifier
from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime
from patchcxr.tracking import run_settings
from patchcxr.training import TrainingFiles

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    model: str,
    inputs: str,
    split: str,
    manifest: str,
    train: dict[str, Any],
    input_settings: str,
    weights: dict[str, Any],
    synthetic: list[str],
    tracking: dict[str, Any],
    pipeline: str,
    outputs: dict[str, str],
    resume_dir: str,
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
    train_classifier(
        inputs_path=inputs,
        split_path=split,
        settings=settings_from(train | {"mode": model}),
        input_settings=InputSettings.read(input_settings),
        files=TrainingFiles(resume_dir=resume_dir, **outputs),
        runtime=runtime,
        weights=weights,
        synthetic=synthetic,
        tracking=run_settings(
            tracking,
            pipeline,
            {"manifest": manifest, "classifier_inputs": inputs, "classification_split": split},
            rule=snakemake.rule,
        ),
    )


main(
    snakemake.wildcards.model,
    snakemake.input.inputs,
    snakemake.input.split,
    snakemake.input.manifest,
    dict(snakemake.params.train),
    snakemake.input.input_settings,
    dict(snakemake.params.weights),
    [str(s) for s in snakemake.params.synthetic],
    dict(snakemake.params.tracking),
    snakemake.input.get("pipeline", ""),
    {k: snakemake.output[k] for k in ("model", "metadata", "history")},
    snakemake.params.resume_dir,
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
