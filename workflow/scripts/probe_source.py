"""Rule probe_source: one source probe of the confound audit (a classifier mode and view)."""

from typing import TYPE_CHECKING, Any

import torch

from patchcxr.audit import probe_source
from patchcxr.classification.settings import InputSettings, settings_from
from patchcxr.logs import setup_logging
from patchcxr.preprocess import PreprocessSettings

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    mode: str,
    view: str,
    inputs: dict[str, str],
    train: dict[str, Any],
    input_settings: InputSettings,
    k: int,
    weights: dict[str, Any],
    out_dir: str,
    threads: int,
    device: str,
    precision: str,
    log: str,
) -> None:
    setup_logging(log)
    torch.set_num_threads(threads)
    probe_source(
        inputs_path=inputs["inputs"],
        manifest_path=inputs["manifest"],
        split_path=inputs["split"],
        view=view,
        settings=settings_from(train | {"mode": mode}),
        input_settings=input_settings,
        out_dir=out_dir,
        k=k,
        device=device,
        weights=weights,
        precision=precision,
    )


main(
    snakemake.wildcards.mode,
    snakemake.wildcards.view,
    {k: snakemake.input[k] for k in ("inputs", "manifest", "split")},
    dict(snakemake.params.train),
    InputSettings(
        size=int(snakemake.params.input_size),
        preprocessing=PreprocessSettings.from_config(dict(snakemake.params.preprocessing)),
        mask_source=str(snakemake.params.mask_source),
    ),
    int(snakemake.params.k),
    dict(snakemake.params.weights),
    str(snakemake.params.out_dir),
    snakemake.threads,
    str(snakemake.resources.device),
    str(snakemake.resources.precision),
    snakemake.log[0],
)
