"""Rule train_segmentation: one network, with or without the paper's preprocessing."""

from typing import TYPE_CHECKING, Any

import torch

from patchcxr.logs import setup_logging
from patchcxr.segmentation.data import Preprocessing
from patchcxr.segmentation.train import train_segmentation
from patchcxr.tracking import run_settings
from patchcxr.training import TrainingFiles

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str,
    split: str,
    model: str,
    model_cfg: dict[str, Any],
    train: dict[str, Any],
    preprocessing: dict[str, Any],
    tracking: dict[str, Any],
    pipeline: str,
    outputs: dict[str, str],
    resume_dir: str,
    threads: int,
    device: str,
    precision: str,
    memory_efficient: str,
    log: str,
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    train_segmentation(
        manifest_path=manifest,
        split_path=split,
        model_name=model,
        model_cfg=model_cfg,
        train_cfg=train,
        prep=Preprocessing(**preprocessing),
        files=TrainingFiles(resume_dir=resume_dir, **outputs),
        device=device,
        tracking=run_settings(tracking, pipeline, {"manifest": manifest, "segmentation_split": split}),
        precision=precision,
        memory_efficient=memory_efficient,
    )


main(
    snakemake.input.manifest,
    snakemake.input.split,
    snakemake.wildcards.model,
    dict(snakemake.params.model_cfg),
    dict(snakemake.params.train),
    dict(snakemake.params.preprocessing),
    dict(snakemake.params.tracking),
    snakemake.input.get("pipeline", ""),
    {k: snakemake.output[k] for k in ("model", "metadata", "history")},
    snakemake.params.resume_dir,
    snakemake.threads,
    str(snakemake.resources.device),
    str(snakemake.resources.precision),
    str(snakemake.resources.memory_efficient),
    snakemake.log[0],
)
