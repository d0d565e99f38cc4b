"""Rule probe_source: one source probe of the confound audit (a classifier mode and view)."""

from typing import TYPE_CHECKING, Any

from patchcxr.audit.probes import probe_source
from patchcxr.classification.settings import InputSettings, settings_from
from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    mode: str,
    view: str,
    inputs: dict[str, str],
    train: dict[str, Any],
    input_settings: InputSettings,
    k: int,
    folds: int,
    weights: dict[str, Any],
    out_dir: str,
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
    probe_source(
        inputs_path=inputs["inputs"],
        manifest_path=inputs["manifest"],
        split_path=inputs["split"],
        view=view,
        settings=settings_from(train | {"mode": mode}),
        input_settings=input_settings,
        out_dir=out_dir,
        k=k,
        folds=folds,
        runtime=runtime,
        weights=weights,
    )


main(
    snakemake.wildcards.mode,
    snakemake.wildcards.view,
    {k: snakemake.input[k] for k in ("inputs", "manifest", "split")},
    dict(snakemake.params.train),
    InputSettings.read(snakemake.input.input_settings),
    int(snakemake.params.k),
    int(snakemake.params.folds),
    dict(snakemake.params.weights),
    str(snakemake.params.out_dir),
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
