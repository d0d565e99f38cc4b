"""Rule compute_saliency: probabilistic Grad-CAM maps, overlays and the pointing game."""

from typing import TYPE_CHECKING, Any

import torch

from patchcxr.classification.explain import saliency_for_split
from patchcxr.io import write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    inputs: dict[str, str],
    saliency: dict[str, Any],
    mode: str,
    seed: int,
    files: str,
    table: str,
    threads: int,
    device: str,
    log: str,
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    df = saliency_for_split(
        inputs["model"],
        inputs["inputs"],
        inputs["split"],
        inputs["manifest"],
        out_dir=files,
        k=int(saliency["k"]),
        target=saliency["target"],
        max_images=int(saliency["max_images"]),
        truth_root=saliency["ground_truth"],
        device=device,
        batch=int(saliency["batch"]),
        seed=seed,
        mode=mode,
    )
    write_tsv(table, df)


main(
    {k: snakemake.input[k] for k in ("model", "inputs", "split", "manifest")},
    dict(snakemake.params.saliency),
    str(snakemake.params.mode),
    int(snakemake.params.seed),
    snakemake.output.files,
    snakemake.output.table,
    snakemake.threads,
    str(snakemake.resources.device),
    snakemake.log[0],
)
