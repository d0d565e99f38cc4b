"""Rule fetch_weights: a backbone's ImageNet weights by the configured route, as a
torchvision-format file (patchcxr.models.weights)."""

from pathlib import Path
from typing import TYPE_CHECKING

from patchcxr.logs import setup_logging
from patchcxr.models.weights import fetch_weights

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(backbone: str, route: str, out: str, log: str) -> None:
    setup_logging(log)
    written = fetch_weights(backbone, route, Path(out).parent)
    if written != Path(out):
        raise ValueError(f"the {route} route wrote {written}, the workflow expected {out}")


main(str(snakemake.params.backbone), str(snakemake.params.route), snakemake.output[0], snakemake.log[0])
