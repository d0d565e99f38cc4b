"""Rule predict_masks: lung and heart masks, overlays and QC rows for one manifest block."""

from typing import TYPE_CHECKING, Any

from patchcxr.io import read_tsv
from patchcxr.logs import setup_logging
from patchcxr.models.state import Runtime
from patchcxr.segmentation.predict import predict_shard

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str,
    models: list[str],
    mask_folds: str,
    shard: int,
    predict: dict[str, Any],
    files: str,
    rows: str,
    runtime: Runtime,
    log: str,
) -> None:
    setup_logging(log)
    runtime.start()
    predict_shard(
        manifest_path=manifest,
        shard=shard,
        shard_size=int(predict["shard_size"]),
        model_paths=models,
        mask_folds=read_tsv(mask_folds),
        out_dir=files,
        rows_out=rows,
        batch_size=int(predict["batch_size"]),
        cleanup=bool(predict["cleanup"]),
        lung_range=predict["lung_fraction"],
        runtime=runtime,
    )


main(
    snakemake.input.manifest,
    list(snakemake.input.models),
    snakemake.input.mask_folds,
    int(snakemake.wildcards.shard),
    dict(snakemake.params.predict),
    snakemake.output.files,
    snakemake.output.rows,
    Runtime.of_job(snakemake.resources, snakemake.threads),
    snakemake.log[0],
)
