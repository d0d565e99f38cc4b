"""Rule collect_biomarkers: features.tsv, histograms.tsv and the example list."""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.biomarkers.summaries import examples_per_class, histogram_density
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(features: list[str], histograms: list[str], manifest: str, qc: str, outputs: dict[str, str], log: str) -> None:
    setup_logging(log)
    feats = pd.concat([read_tsv(p, typed=True) for p in features], ignore_index=True).sort_values("image_id")
    hist = histogram_density(pd.concat([read_tsv(p, typed=True) for p in histograms], ignore_index=True))
    examples = examples_per_class(feats, read_tsv(manifest), read_tsv(qc))
    for df, key in ((feats, "features"), (hist, "histograms"), (examples, "examples")):
        write_tsv(outputs[key], df)


main(
    list(snakemake.input.features),
    list(snakemake.input.histograms),
    snakemake.input.manifest,
    snakemake.input.qc,
    {k: snakemake.output[k] for k in ("features", "histograms", "examples")},
    snakemake.log[0],
)
