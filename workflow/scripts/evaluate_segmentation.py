"""Rule evaluate_segmentation: Jaccard and Dice of every network on the held-out images."""

from typing import TYPE_CHECKING

import torch

from patchcxr.logs import setup_logging
from patchcxr.segmentation.predict import evaluate_models

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str, split: str, models: dict[str, str], outputs: dict[str, str], threads: int, device: str, log: str
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    evaluate_models(manifest, split, models, outputs["scores"], outputs["summary"], outputs["tests"], device)


main(
    snakemake.input.manifest,
    snakemake.input.split,
    {k: v for k, v in snakemake.input.items() if "/" in k},
    {k: snakemake.output[k] for k in ("scores", "summary", "tests")},
    snakemake.threads,
    str(snakemake.resources.device),
    snakemake.log[0],
)
