"""Rule paper_tables: the paper's tables and the headline metrics (from the workflow's tables)."""

from typing import TYPE_CHECKING, Any

from patchcxr.logs import setup_logging
from patchcxr.paper import write_tables

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(inputs: dict[str, Any], runs: list[tuple[str, int]], outputs: dict[str, str], log: str) -> None:
    setup_logging(log)
    keys = [(str(m), int(s)) for m, s in runs]

    def by_run(name: str) -> dict[tuple[str, int], str]:
        return dict(zip(keys, [str(p) for p in inputs[name]], strict=True))

    comparison, seeds = list(inputs["comparison"]), list(inputs["seeds"])
    audit = [str(p) for p in inputs["audit"]]  # none when the audit is off
    external = [str(p) for p in inputs["external"]]  # none without leave-one-source-out
    sanity = [str(p) for p in inputs["sanity"]]  # none without the local classifier
    write_tables(
        str(inputs["cohort"]),
        str(inputs["split"]),
        str(inputs["segmentation"]),
        str(inputs["biomarkers"]),
        metrics_paths=by_run("metrics"),
        comparison_path=comparison[0] if comparison else None,
        seeds_path=seeds[0] if seeds else None,
        out=outputs,
        model_metadata=by_run("model_metadata"),
        predictions=by_run("predictions"),
        adult_metrics=by_run("adult_metrics"),
        audit=dict(zip(("class_source", "probes", "verdict"), audit, strict=True)) if audit else None,
        calibration=by_run("calibration"),
        strata=by_run("strata"),
        external=external[0] if external else None,
        sanity=sanity[0] if sanity else None,
    )


main(
    {k: snakemake.input[k] for k in ("cohort", "split", "segmentation", "biomarkers", "metrics", "comparison")}
    | {k: snakemake.input[k] for k in ("model_metadata", "predictions", "adult_metrics", "seeds", "audit")}
    | {k: snakemake.input[k] for k in ("calibration", "strata", "external", "sanity")},
    [tuple(r) for r in snakemake.params.runs],
    dict(snakemake.output.items()),
    snakemake.log[0],
)
