"""Rule biomarker_features: lung features and intensity histograms of one shard's cohort images."""

from typing import TYPE_CHECKING, Any

from patchcxr.biomarkers import FeatureSettings, shard_features
from patchcxr.data.harmonise import read_tsv
from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str,
    cohort: str,
    qc: str,
    settings: dict[str, Any],
    gamma: float,
    crop_band: bool,
    features_out: str,
    hist_out: str,
    log: str,
) -> None:
    setup_logging(log)
    fs = FeatureSettings(
        size=int(settings["size"]),
        patch=int(settings["patch"]),
        patches=int(settings["patches"]),
        gamma=float(gamma),
        crop_band=bool(crop_band),
        seed=int(settings["seed"]),
    )
    features, hist = shard_features(read_tsv(manifest), read_tsv(cohort), read_tsv(qc), fs)
    atomic_write_text(features_out, features.to_csv(sep="\t", index=False, lineterminator="\n"))
    atomic_write_text(hist_out, hist.to_csv(sep="\t", index=False, lineterminator="\n"))


main(
    snakemake.input.manifest,
    snakemake.input.cohort,
    snakemake.input.qc,
    dict(snakemake.params.settings),
    snakemake.params.gamma,
    snakemake.params.crop_band,
    snakemake.output.features,
    snakemake.output.histograms,
    snakemake.log[0],
)
