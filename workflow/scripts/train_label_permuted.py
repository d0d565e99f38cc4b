"""Rule train_label_permuted: the local classifier of the first seed trained on permuted
labels (the saliency label-permutation test, patchcxr.classification.sanity)."""

from typing import TYPE_CHECKING, Any

from patchcxr.classification.sanity import permuted_labels
from patchcxr.classification.settings import InputSettings, settings_from
from patchcxr.classification.train import train_classifier
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime
from patchcxr.training import TrainingFiles

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    inputs: str,
    split: str,
    train: dict[str, Any],
    epochs: int,
    input_settings: str,
    weights: dict[str, Any],
    outputs: dict[str, str],
    resume_dir: str,
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
    settings = settings_from(train | {"mode": "local", "epochs": epochs, "patience": None})
    films = permuted_labels(read_tsv(inputs), read_tsv(split), settings.labels, seed=settings.seed)
    write_tsv(outputs["inputs"], films)
    train_classifier(
        inputs_path=outputs["inputs"],
        split_path=split,
        settings=settings,
        input_settings=InputSettings.read(input_settings),
        files=TrainingFiles(resume_dir=resume_dir, **{k: outputs[k] for k in ("model", "metadata", "history")}),
        runtime=runtime,
        weights=weights,
    )


main(
    snakemake.input.inputs,
    snakemake.input.split,
    dict(snakemake.params.train),
    int(snakemake.params.epochs),
    snakemake.input.input_settings,
    dict(snakemake.params.weights),
    {k: snakemake.output[k] for k in ("model", "metadata", "history", "inputs")},
    snakemake.params.resume_dir,
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
