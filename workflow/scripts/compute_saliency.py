"""Rule compute_saliency: probabilistic Grad-CAM maps, overlays and the pointing game."""

from typing import TYPE_CHECKING, Any

import torch

from patchcxr.classification.infer import saliency_for_split
from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    inputs: dict[str, str],
    saliency: dict[str, Any],
    mode: str,
    crop_band: bool,
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
        files,
        int(saliency["k"]),
        saliency["target"],
        int(saliency["max_images"]),
        saliency["ground_truth"],
        crop_band,
        device,
        int(saliency["batch"]),
        seed,
        mode,
    )
    atomic_write_text(table, df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))


main(
    {k: snakemake.input[k] for k in ("model", "inputs", "split", "manifest")},
    dict(snakemake.params.saliency),
    str(snakemake.params.mode),
    bool(snakemake.params.crop_band),
    int(snakemake.params.seed),
    snakemake.output.files,
    snakemake.output.table,
    snakemake.threads,
    str(snakemake.resources.device),
    snakemake.log[0],
)
