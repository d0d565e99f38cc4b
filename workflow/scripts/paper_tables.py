"""Rule paper_tables: the paper's tables and the headline metrics (from the workflow's tables)."""

from typing import TYPE_CHECKING, Any

from patchcxr.logs import setup_logging
from patchcxr.paper import write_tables

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(inputs: dict[str, Any], models: list[str], outputs: dict[str, str], log: str) -> None:
    setup_logging(log)
    metrics = dict(zip(models, list(inputs["metrics"]), strict=True))
    comparison = list(inputs["comparison"])
    model_metadata = dict(zip(models, list(inputs["model_metadata"]), strict=True))
    predictions = dict(zip(models, list(inputs["predictions"]), strict=True))
    write_tables(
        str(inputs["cohort"]),
        str(inputs["split"]),
        str(inputs["segmentation"]),
        str(inputs["biomarkers"]),
        metrics_paths=metrics,
        comparison_path=comparison[0] if comparison else None,
        out=outputs,
        model_metadata=model_metadata,
        predictions=predictions,
    )


main(
    {k: snakemake.input[k] for k in ("cohort", "split", "segmentation", "biomarkers", "metrics", "comparison")}
    | {k: snakemake.input[k] for k in ("model_metadata", "predictions")},
    list(snakemake.params.models),
    dict(snakemake.output.items()),
    snakemake.log[0],
)
