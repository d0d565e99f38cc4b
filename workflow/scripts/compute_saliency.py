"""Rule compute_saliency: probabilistic Grad-CAM maps, overlays and the pointing game."""

from typing import TYPE_CHECKING, Any

from patchcxr.classification.explain import randomisation_test, saliency_for_split, saliency_sanity
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    inputs: dict[str, str],
    saliency: dict[str, Any],
    mode: str,
    seed: int,
    n_boot: int,
    files: str,
    outputs: dict[str, str],
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
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
        runtime=runtime,
        batch=int(saliency["batch"]),
        seed=seed,
        mode=mode,
    )
    write_tsv(outputs["table"], df)
    # the randomisation test on the first saliency.sanity_images of those films
    randomised = randomisation_test(
        inputs["model"],
        inputs["inputs"],
        inputs["split"],
        target=saliency["target"],
        max_images=min(int(saliency["sanity_images"]), int(saliency["max_images"])),
        k=int(saliency["k"]),
        runtime=runtime,
        batch=int(saliency["batch"]),
        seed=seed,
    )
    write_tsv(outputs["randomisation"], randomised)
    films = read_tsv(inputs["inputs"])
    patients = dict(zip(films["image_id"], films["patient_id"], strict=True))
    write_tsv(outputs["sanity"], saliency_sanity(randomised, df, patients, n_boot=n_boot, seed=seed))


main(
    {k: snakemake.input[k] for k in ("model", "inputs", "split", "manifest")},
    dict(snakemake.params.saliency),
    str(snakemake.params.mode),
    int(snakemake.params.seed),
    int(snakemake.params.bootstrap),
    snakemake.output.files,
    {k: snakemake.output[k] for k in ("table", "randomisation", "sanity")},
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
