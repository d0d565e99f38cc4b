"""Rule evaluate_segmentation: Jaccard and Dice of every network on the held-out images."""

from typing import TYPE_CHECKING, Any

from patchcxr.io import read_tsv
from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime
from patchcxr.segmentation.evaluate import evaluate_models
from patchcxr.tracking import mlflow_run, run_settings

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str,
    split: str,
    models: dict[str, str],
    tracking: dict[str, Any],
    pipeline: str,
    outputs: dict[str, str],
    n_boot: int,
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
    evaluate_models(
        manifest_path=manifest,
        split_path=split,
        models=models,
        scores_out=outputs["scores"],
        summary_out=outputs["summary"],
        tests_out=outputs["tests"],
        runtime=runtime,
        n_boot=n_boot,
    )
    settings = run_settings(
        tracking, pipeline, {"manifest": manifest, "segmentation_split": split}, rule=snakemake.rule
    )
    with mlflow_run(settings, "evaluate-segmentation", {"models": sorted(models)}) as run:
        if run is not None:
            summary = read_tsv(outputs["summary"], typed=True)
            run.log_table_metrics(
                {
                    f"{r.model}.{r.preprocessing}.{r.dataset}.{r.structure.replace(' ', '_')}.jaccard": r.jaccard_mean
                    for r in summary.itertuples()
                }
            )
            for key in ("summary", "tests"):
                run.log_artifact(outputs[key])


main(
    snakemake.input.manifest,
    snakemake.input.split,
    {k: v for k, v in snakemake.input.items() if "/" in k},
    dict(snakemake.params.tracking),
    snakemake.input.get("pipeline", ""),
    {k: snakemake.output[k] for k in ("scores", "summary", "tests")},
    int(snakemake.params.bootstrap),
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
