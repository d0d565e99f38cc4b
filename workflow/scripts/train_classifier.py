"""Rule train_classifier: the local (patch) or global classifier."""

from typing import TYPE_CHECKING, Any

import torch

from patchcxr.classification.train import settings_from, train_classifier
from patchcxr.logs import setup_logging
from patchcxr.tracking import run_settings

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    model: str,
    inputs: str,
    split: str,
    manifest: str,
    train: dict[str, Any],
    weights: dict[str, Any],
    tracking: dict[str, Any],
    pipeline: str,
    outputs: dict[str, str],
    resume_dir: str,
    threads: int,
    device: str,
    log: str,
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    settings = settings_from(train | {"mode": model})
    train_classifier(
        inputs,
        split,
        settings,
        outputs["model"],
        outputs["metadata"],
        outputs["history"],
        resume_dir,
        device,
        weights,
        run_settings(
            tracking, pipeline, {"manifest": manifest, "classifier_inputs": inputs, "classification_split": split}
        ),
    )


main(
    snakemake.wildcards.model,
    snakemake.input.inputs,
    snakemake.input.split,
    snakemake.input.manifest,
    dict(snakemake.params.train),
    dict(snakemake.params.weights),
    dict(snakemake.params.tracking),
    snakemake.input.get("pipeline", ""),
    {k: snakemake.output[k] for k in ("model", "metadata", "history")},
    snakemake.params.resume_dir,
    snakemake.threads,
    str(snakemake.resources.device),
    snakemake.log[0],
)
