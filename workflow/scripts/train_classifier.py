"""Rule train_classifier: the local (patch) or global classifier."""

from typing import TYPE_CHECKING, Any

import torch

from patchcxr.classification.settings import InputSettings, settings_from
from patchcxr.classification.train import train_classifier
from patchcxr.logs import setup_logging
from patchcxr.preprocess import PreprocessSettings
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
    input_size: int,
    preprocessing: dict[str, Any],
    mask_source: str,
    weights: dict[str, Any],
    tracking: dict[str, Any],
    pipeline: str,
    outputs: dict[str, str],
    resume_dir: str,
    threads: int,
    device: str,
    precision: str,
    log: str,
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    train_classifier(
        inputs_path=inputs,
        split_path=split,
        settings=settings_from(train | {"mode": model}),
        input_settings=InputSettings(
            size=input_size, preprocessing=PreprocessSettings.from_config(preprocessing), mask_source=mask_source
        ),
        files=TrainingFiles(resume_dir=resume_dir, **outputs),
        device=device,
        weights=weights,
        tracking=run_settings(
            tracking, pipeline, {"manifest": manifest, "classifier_inputs": inputs, "classification_split": split}
        ),
        precision=precision,
    )


main(
    snakemake.wildcards.model,
    snakemake.input.inputs,
    snakemake.input.split,
    snakemake.input.manifest,
    dict(snakemake.params.train),
    int(snakemake.params.input_size),
    dict(snakemake.params.preprocessing),
    str(snakemake.params.mask_source),
    dict(snakemake.params.weights),
    dict(snakemake.params.tracking),
    snakemake.input.get("pipeline", ""),
    {k: snakemake.output[k] for k in ("model", "metadata", "history")},
    snakemake.params.resume_dir,
    snakemake.threads,
    str(snakemake.resources.device),
    str(snakemake.resources.precision),
    snakemake.log[0],
)
