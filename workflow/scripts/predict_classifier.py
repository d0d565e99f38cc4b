"""Rule predict_classifier: K-patch votes for every test image."""

from typing import TYPE_CHECKING

import torch

from patchcxr.classification.infer import predict_split
from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    model: str, inputs: str, split: str, k: int, mode: str, seed: int, out: str, threads: int, device: str, log: str
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    df = predict_split(model, inputs, split, k, "test", device, seed=seed, mode=mode)
    atomic_write_text(out, df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))


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
