"""Rule compute_saliency: probabilistic Grad-CAM maps, overlays, the pointing game and the
saliency sanity checks."""

from typing import TYPE_CHECKING, Any

from patchcxr.classification.explain import saliency_for_split
from patchcxr.classification.sanity import randomisation_test, saliency_sanity
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
    min_patients: int,
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
        peak_coverage=float(saliency["peak_coverage"]),
    )
    write_tsv(outputs["table"], df)
    # the randomisation tests on the first saliency.sanity_images of those films
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
        peak_coverage=float(saliency["peak_coverage"]),
        permuted_model=inputs.get("permuted") or None,
    )
    write_tsv(outputs["randomisation"], randomised)
    films = read_tsv(inputs["inputs"])
    patients = dict(zip(films["image_id"], films["patient_id"], strict=True))
    write_tsv(
        outputs["sanity"],
        saliency_sanity(randomised, df, patients, n_boot=n_boot, seed=seed, min_patients=min_patients),
    )


main(
    {k: snakemake.input.get(k, "") for k in ("model", "inputs", "split", "manifest", "permuted")},
    dict(snakemake.params.saliency),
    str(snakemake.params.mode),
    int(snakemake.params.seed),
    int(snakemake.params.bootstrap),
    int(snakemake.params.min_patients),
    snakemake.output.files,
    {k: snakemake.output[k] for k in ("table", "randomisation", "sanity")},
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
