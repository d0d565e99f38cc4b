"""Rule predict_classifier: K-patch votes for every test image."""

from typing import TYPE_CHECKING

import torch

from patchcxr.classification.predict import predict_split
from patchcxr.io import write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    model: str, inputs: str, split: str, k: int, mode: str, seed: int, out: str, threads: int, device: str, log: str
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    df = predict_split(model, inputs, split, k=k, part="test", device=device, seed=seed, mode=mode)
    write_tsv(out, df)


main(
    snakemake.input.model,
    snakemake.input.inputs,
    snakemake.input.split,
    int(snakemake.params.k),
    str(snakemake.params.mode),
    int(snakemake.params.seed),
    snakemake.output[0],
    snakemake.threads,
    str(snakemake.resources.device),
    snakemake.log[0],
)
