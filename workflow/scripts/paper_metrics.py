"""Rule paper_metrics: results/paper/metrics.json, the headline numbers, and headline.json,
the few of them `dvc metrics show` prints."""

import json
from typing import TYPE_CHECKING

from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging
from patchcxr.paper.metrics import headline, metrics_text

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    inputs: dict[str, list[str]], synthetic: list[str], banner: str, mask_model: str, out: dict[str, str], log: str
) -> None:
    setup_logging(log)
    text = metrics_text(inputs, synthetic, banner)
    atomic_write_text(out["metrics"], text)
    atomic_write_text(out["headline"], json.dumps(headline(json.loads(text), mask_model), indent=2) + "\n")


main(
    {name: [str(p) for p in paths] for name, paths in snakemake.input.items()},
    [str(s) for s in snakemake.params.synthetic],
    str(snakemake.params.banner),
    str(snakemake.params.mask_model),
    {"metrics": snakemake.output.metrics, "headline": snakemake.output.headline},
    snakemake.log[0],
)
