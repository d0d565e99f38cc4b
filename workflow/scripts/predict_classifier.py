"""Rule predict_classifier: K-patch votes for every test image."""

from typing import TYPE_CHECKING

from patchcxr.classification.predict import predict_split
from patchcxr.io import write_tsv
from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime

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
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
    for part, path in out.items():  # test, and val for the calibration's temperature
        pred = predict_split(model, inputs, split, k=k, part=part, runtime=runtime, seed=seed, mode=mode)
        write_tsv(path, pred)


main(
    snakemake.input.model,
    snakemake.input.inputs,
    snakemake.input.split,
    int(snakemake.params.k),
    str(snakemake.params.mode),
    int(snakemake.params.seed),
    {"test": snakemake.output.test, "val": snakemake.output.val},
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
