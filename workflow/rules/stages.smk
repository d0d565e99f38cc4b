# One target rule per stage, as `dvc.yaml` runs them (`snakemake --cores N stage_<name>`):
# each names the outputs of its stage for the configured sources and models.


rule stage_data:
    input:
        ["results/data/manifest.tsv", "results/data/cohort.tsv", "results/data/quarantine.tsv"],
        ["results/splits/classification.tsv", "results/splits/segmentation.tsv"],
        list(tracking_inputs().values()),


rule stage_segmentation:
    input:
        ["results/segmentation/summary.tsv", "results/segmentation/figures/jaccard.png"],


rule stage_masks:
    input:
        "results/masks/qc.tsv",


rule stage_biomarkers:
    input:
        biomarker_targets(),


rule stage_classifier:
    input:
        expand("results/classification/{model}/model.pt", model=config["classification"]["models"]),


rule stage_evaluation:
    input:
        classification_targets(),
