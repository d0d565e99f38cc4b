"""Rules plot_biomarker_features, plot_ctr_scatter, plot_lung_histograms and
plot_segmentation_examples: one biomarker figure each, drawn from the tables."""

from typing import TYPE_CHECKING

from patchcxr import figures
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(figure: str, inputs: dict[str, str], label: str, reference: str, min_n: int, out: str, log: str) -> None:
    setup_logging(log)
    if figure == "features":
        figures.plot_feature_boxes(
            inputs["features"], inputs["tests"], out, reference=reference, label=label, min_n=min_n
        )
    elif figure == "ctr_scatter":
        figures.plot_ctr_scatter(inputs["features"], out, label=label)
    elif figure == "histograms":
        figures.plot_lung_histograms(inputs["histograms"], out)
    else:
        figures.plot_segmentation_examples(inputs["examples"], out)


main(
    snakemake.params.figure,
    dict(snakemake.input.items()),
    snakemake.params.label,
    snakemake.params.reference,
    int(snakemake.params.min_n),
    snakemake.output[0],
    snakemake.log[0],
)
