"""Rule predict_classifier: K-patch votes for every test image."""

from typing import TYPE_CHECKING

import torch

from patchcxr.classification.predict import predict_split
from patchcxr.io import write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    model: str,
    inputs: str,
    split: str,
    k: int,
    mode: str,
    seed: int,
    out: dict[str, str],
    threads: int,
    device: str,
    precision: str,
    log: str,
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    for part, path in out.items():  # test, and val for the calibration's temperature
        pred = predict_split(
            model, inputs, split, k=k, part=part, device=device, seed=seed, mode=mode, precision=precision
        )
        write_tsv(path, pred)


main(
    snakemake.input.model,
    snakemake.input.inputs,
    snakemake.input.split,
    int(snakemake.params.k),
    str(snakemake.params.mode),
    int(snakemake.params.seed),
    {"test": snakemake.output.test, "val": snakemake.output.val},
    snakemake.threads,
    str(snakemake.resources.device),
    str(snakemake.resources.precision),
    snakemake.log[0],
)
