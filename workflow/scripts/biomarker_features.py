"""Rule biomarker_features: lung features and intensity histograms of one shard's cohort images."""

from typing import TYPE_CHECKING, Any

from patchcxr.biomarkers.features import FeatureSettings, shard_features
from patchcxr.classification.settings import InputSettings
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    manifest: str,
    cohort: str,
    qc: str,
    settings: dict[str, Any],
    classifier_train: dict[str, Any],
    input_settings: str,
    features_out: str,
    hist_out: str,
    log: str,
) -> None:
    setup_logging(log)
    fs = FeatureSettings.from_config(settings, classifier_train, InputSettings.read(input_settings))
    features, hist = shard_features(read_tsv(manifest), read_tsv(cohort), read_tsv(qc), fs)
    write_tsv(features_out, features)
    write_tsv(hist_out, hist)


main(
    snakemake.input.manifest,
    snakemake.input.cohort,
    snakemake.input.qc,
    dict(snakemake.params.settings),
    dict(snakemake.params.classifier_train),
    snakemake.input.input_settings,
    snakemake.output.features,
    snakemake.output.histograms,
    snakemake.log[0],
)
