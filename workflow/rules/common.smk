# Shared helpers of the workflow: configuration validation, source resolution and target
# lists. Python only; the rules live in the stage files. Facts the package defines (class
# names, synthetic sources, registration advice, shard arithmetic) are imported from it.

from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from patchcxr.data.download import REGISTRATION, registration_message
from patchcxr.classification.settings import recipe_settings
from patchcxr.data.labels import LABEL5
from patchcxr.models.weights import weights_file_name
from patchcxr.shards import n_shards
from patchcxr.synthetic import SOURCES as SYNTHETIC_SOURCES

# Keys that moved: a configuration written for an older layout stops with the new key's
# name instead of the schema's generic "additional property" error.
MOVED_KEYS = {
    ("segmentation", "gamma"): "preprocessing.gamma",
    ("segmentation", "crop_blank_band"): "preprocessing.crop_blank_band",
    # the patch analysis draws the classifier's patches, scaled to biomarkers.size
    ("biomarkers", "patch"): "classification.train.patch",
    # one training run per seed of a list
    ("segmentation", "train", "seed"): "segmentation.train.seeds (a list)",
    ("classification", "train", "seed"): "classification.train.seeds (a list)",
    # ImageNet weights come by one of four routes
    ("classification", "weights", "download"): "classification.weights.route (torchvision | file | registry | none)",
}
for _path, _new in MOVED_KEYS.items():
    _node = config
    for _part in _path[:-1]:
        _node = _node.get(_part) if isinstance(_node, dict) else None
    if isinstance(_node, dict) and _path[-1] in _node:
        raise WorkflowError(f"config key {'.'.join(_path)} has moved: set {_new} instead (config/config.yaml)")

# Validate first and fill in the schema's defaults: a misspelt key or a value out of range
# stops the workflow here, naming the key, before any job is scheduled.
validate(config, schema="../schemas/config.schema.yaml")
if config["external"]["leave_one_source_out"] and not set(config["external"]["models"]) <= set(config["classification"]["models"]):
    raise WorkflowError(
        f"external.models {config['external']['models']} must be among classification.models "
        f"{config['classification']['models']}: each held-out source is shown beside that classifier's internal test"
    )
# the chosen training recipe applies to every classifier mode (checked here, before any job)
for _mode in config["classification"]["models"]:
    try:
        recipe_settings(config["classification"], 0, _mode)
    except ValueError as _err:
        raise WorkflowError(str(_err)) from None
for _finding, _label in config["labels"]["findings"].items():
    if _label not in LABEL5:
        raise WorkflowError(f"labels.findings.{_finding}: {_label!r} is not one of the classes {', '.join(LABEL5)}")

def canonical(obj):
    """``obj`` with every mapping's keys sorted. Snakemake compares params by their
    representation, and overlay order changes key order: without this, the same settings
    given as `--configfile demo.yaml` or `--configfile config.yaml demo.yaml` would rerun
    every job."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def tracking_inputs(wildcards=None):
    """The pipeline's MLflow parent run for a tracked job (nothing when tracking is off).
    ancient(): a newer parent run (a new configuration) never makes finished jobs stale."""
    if not config["tracking"]["enabled"]:
        return {}
    return {"pipeline": ancient("results/tracking/pipeline_run.json")}


def synthetic_targets():
    """Folders of the synthetic sources the configuration asks for."""
    return expand(
        ["results/synthetic/{source}", "results/synthetic/ground_truth/{source}"],
        source=config["synthetic"]["sources"],
    )


def active_sources():
    """Names of the enabled sources, in configuration order."""
    return [name for name, spec in config["sources"].items() if spec.get("enabled", True)]


def source_root(name):
    """Folder of a source: its local `path`, else where download_<name> puts it."""
    spec = config["sources"][name]
    return spec["path"] if spec.get("path") else f"resources/raw/{name}"


def _made_by_workflow(path):
    return path in {f"results/synthetic/{s}" for s in config["synthetic"]["sources"]}


def check_sources():
    """Configuration errors that stop the workflow at once: a source's `masks` must name
    another enabled source."""
    for name in active_sources():
        masks = config["sources"][name].get("masks")
        if masks and masks not in active_sources():
            raise WorkflowError(f"sources.{name}.masks names {masks!r}, which is not an enabled source")


def check_registration(name):
    """A configured `path` must exist (the message names the path as given and resolved);
    JSRT and SCR, which cannot be downloaded, need a local copy: without a `path` and
    without one in resources/raw/<name>, stop with where to register and where to put the
    files (checked when the DAG is built, so `--lint` still works)."""
    spec = config["sources"][name]
    path = spec.get("path")
    if path and not (Path(path).is_dir() or _made_by_workflow(path)):
        where = Path(path).resolve()
        state = "is not a folder" if where.exists() else "does not exist"
        raise WorkflowError(f"sources.{name}.path is {path!r}, which {state} (resolved: {where}): check the path")
    if spec["format"] in REGISTRATION and not path and not Path(source_root(name)).is_dir():
        raise WorkflowError(registration_message(spec["format"], name))


check_sources()
for _name in config["data"]["cohort_sources"]:
    if _name not in active_sources():
        raise WorkflowError(f"data.cohort_sources names {_name!r}, which is not an enabled source")
for _name in config["segmentation"]["train_models"]:
    if _name not in config["segmentation"]["models"]:
        raise WorkflowError(f"segmentation.train_models names {_name!r}, which is not in segmentation.models")
if config["segmentation"]["mask_model"] not in config["segmentation"]["train_models"]:
    raise WorkflowError(
        f"segmentation.mask_model {config['segmentation']['mask_model']!r} is not one of segmentation.train_models "
        f"({', '.join(config['segmentation']['train_models'])})"
    )


def download_specs():
    """Sources fetched by the workflow: enabled, with a download spec and no local path."""
    return {
        name: canonical(config["sources"][name]["download"])
        for name in active_sources()
        if not config["sources"][name].get("path") and "download" in config["sources"][name]
    }


def index_inputs(wildcards):
    """The source folder, and for JSRT the folder of its SCR masks."""
    spec = config["sources"][wildcards.source]
    check_registration(wildcards.source)
    if spec.get("masks"):
        check_registration(spec["masks"])
    inputs = {"root": source_root(wildcards.source)}
    if spec.get("masks"):
        inputs["masks"] = source_root(spec["masks"])
    return inputs


def resolved_source(wildcards):
    """The source spec with resolved folders, as the readers take it."""
    spec = dict(config["sources"][wildcards.source])
    spec["path"] = source_root(wildcards.source)
    if spec.get("masks"):
        spec["masks"] = source_root(spec["masks"])
    spec.pop("download", None)
    return canonical(spec)


def manifest_inputs(wildcards):
    """Every shard's rows and every quarantine, once the shard plan exists (checkpoint:
    the number of shards depends on how many images each source holds)."""
    plan = checkpoints.plan_shards.get().output[0]
    rows, quarantine = [], []
    with open(plan) as fh:
        next(fh)
        for line in fh:
            name, _, shards = line.rstrip("\n").split("\t")
            quarantine.append(f"results/data/index/{name}.quarantine.tsv")
            for shard in range(int(shards)):
                rows.append(f"results/data/shards/{name}/{shard}.tsv")
                quarantine.append(f"results/data/shards/{name}/{shard}.quarantine.tsv")
    return {"rows": rows, "quarantine": quarantine}


def cohort_inputs(wildcards):
    inputs = {"manifest": "results/data/manifest.tsv", "quarantine": "results/data/quarantine.tsv"}
    if config["data"]["cohort"] == "oh2020":
        inputs["metadata"] = paper_metadata_path()
    return inputs


def paper_metadata_path():
    return config["data"]["paper_metadata"].get("path") or "resources/paper/metadata.xls"


def segmentation_preps():
    return ["equalised", "minmax"] if config["segmentation"]["preprocessing_ablation"] else ["equalised"]


def segmentation_model_cfg(wildcards):
    return canonical(config["segmentation"]["models"][wildcards.model])


def segmentation_preprocessing(wildcards):
    prep = config["preprocessing"]
    return {"size": config["segmentation"]["size"], "gamma": prep["gamma"], "crop_band": prep["crop_blank_band"],
            "equalise": wildcards.prep == "equalised"}


def train_seeds(stage):
    """The training seeds of `stage` (segmentation or classification): one run each."""
    return config[stage]["train"]["seeds"]


def train_settings(stage, seed, mode="local"):
    """`stage`.train with the one seed of a run in place of the list of seeds; for the
    classifier (of `mode`) also the chosen recipe's keys over it, the backbone, the mode and
    the recipe's name (patchcxr.classification.settings.recipe_settings)."""
    if stage == "classification":
        try:
            return canonical(recipe_settings(config["classification"], seed, mode))
        except ValueError as err:
            raise WorkflowError(str(err)) from None
    settings = {k: v for k, v in config[stage]["train"].items() if k != "seeds"}
    return canonical(settings | {"seed": int(seed)})


def classifier_weights_path():
    """The torchvision-format ImageNet file the classifier starts from: the rule
    fetch_weights's output (routes torchvision, registry), the user's file (route file), or
    none (route none: from scratch)."""
    cfg = config["classification"]["weights"]
    route = cfg["route"]
    if route == "none":
        return ""
    if route == "file":
        if not cfg["path"]:
            raise WorkflowError("classification.weights.route is file: set classification.weights.path (and sha256)")
        return cfg["path"]
    try:
        return f"resources/weights/{weights_file_name(config['classification']['backbone'], route)}"
    except ValueError as err:
        raise WorkflowError(f"classification.weights: {err}") from None


def classifier_weights():
    """The `weights` param of every classifier training (route, file, sha256)."""
    cfg = config["classification"]["weights"]
    return canonical({"route": cfg["route"], "path": classifier_weights_path(), "sha256": cfg["sha256"]})


def weights_inputs(wildcards=None):
    """The weights file as an input of a classifier training (nothing from scratch)."""
    path = classifier_weights_path()
    return {"weights": path} if path else {}


def mask_model_path():
    """The network whose masks every later stage uses: segmentation.mask_model trained with
    preprocessing, the first of segmentation.train.seeds."""
    seed = train_seeds("segmentation")[0]
    return f"results/segmentation/{config['segmentation']['mask_model']}/equalised/seed_{seed}/model.pt"


def segmentation_models(wildcards):
    """Every trained segmentation network, keyed `<model>/<preprocessing>/<seed>`."""
    return {
        f"{m}/{p}/{s}": f"results/segmentation/{m}/{p}/seed_{s}/model.pt"
        for m in config["segmentation"]["train_models"]
        for p in segmentation_preps()
        for s in train_seeds("segmentation")
    }


def mask_shards(wildcards):
    """Prediction shards over the manifest (checkpoint: its size is known once built)."""
    manifest = checkpoints.build_manifest.get().output.manifest
    with open(manifest) as fh:
        n = sum(1 for _ in fh) - 1
    size = config["segmentation"]["predict"]["shard_size"]
    return [f"results/masks/shards/{k}.tsv" for k in range(n_shards(n, size))]


def biomarker_shards(wildcards):
    """Feature shards: one per mask-prediction shard."""
    shards = [Path(p).stem for p in mask_shards(wildcards)]
    return {
        "features": [f"results/biomarkers/shards/{k}.tsv" for k in shards],
        "histograms": [f"results/biomarkers/shards/{k}.hist.tsv" for k in shards],
    }


def classifier_input_shards(wildcards):
    """Classifier inputs: one table per mask-prediction shard."""
    return [f"results/classification/inputs/{Path(p).stem}.tsv" for p in mask_shards(wildcards)]


# ----------------------------------------------------------------------------- stages
# One target function per stage of workflow/stages.yaml (the one list of stages): what the
# stage makes for the configured sources and models. stages.smk turns each into a rule.
def data_targets():
    if not active_sources():
        return []
    return [
        "results/data/manifest.tsv",
        "results/data/quarantine.tsv",
        "results/data/cohort.tsv",
        "results/splits/classification.tsv",
        "results/splits/segmentation.tsv",
        *tracking_inputs().values(),
    ]


def segmentation_targets():
    if not active_sources():
        return []
    return ["results/segmentation/summary.tsv", "results/segmentation/figures/jaccard.png"]


def masks_targets():
    return ["results/masks/qc.tsv"] if active_sources() else []


def biomarkers_targets():
    if not active_sources():
        return []
    figures = ["features", "ctr_scatter", "histograms", "examples"]
    return ["results/biomarkers/tests.tsv"] + [f"results/biomarkers/figures/{f}.png" for f in figures]


def classifier_runs():
    """Every (model, seed) the classification stage trains, models first."""
    return [[m, int(s)] for m in config["classification"]["models"] for s in train_seeds("classification")]


def classifier_results(name, models=None):
    """`results/evaluation/<model>/seed_<seed>/<name>` of every run (:func:`classifier_runs`)."""
    return [f"results/evaluation/{m}/seed_{s}/{name}" for m, s in classifier_runs() if models is None or m in models]


def classifier_targets():
    if not active_sources():
        return []
    return [f"results/classification/{m}/seed_{s}/model.pt" for m, s in classifier_runs()]


def evaluation_targets():
    if not active_sources():
        return []
    models = config["classification"]["models"]
    saliency = ["results/saliency/local/figure.png"] if "local" in models else []
    return (
        classifier_results("metrics.tsv")
        + classifier_results("confusion.png")
        + classifier_results("reliability.png")
        + ["results/evaluation/global_vs_local.tsv", "results/evaluation/over_seeds.tsv"]
        + saliency
    )


# ----------------------------------------------------------------------------- audit
def audit_probes():
    """Every (model, view) of the confound audit's source probes, models first; none when
    the audit is off."""
    if not config["audit"]["enabled"]:
        return []
    return [[m, v] for m in config["audit"]["models"] for v in config["audit"]["views"]]


def audit_predictions():
    return [f"results/audit/{m}/{v}/predictions.tsv" for m, v in audit_probes()]


def audit_train_settings(mode):
    """The probes' training settings: the `mode` classifier's of its first seed, with
    audit.epochs in place of its epochs where that is set."""
    settings = train_settings("classification", train_seeds("classification")[0], mode)
    epochs = config["audit"]["epochs"]
    return settings if epochs is None else canonical(settings | {"epochs": int(epochs)})


def audit_files():
    """The audit's summary files, in the order the paper tables read them; none when off."""
    if not audit_probes():
        return []
    return [f"results/audit/{name}" for name in ("class_source.tsv", "probes.tsv", "verdict.json")]


def audit_targets():
    if not active_sources() or not audit_probes():
        return []
    return ["results/audit/verdict.json", "results/audit/figure.png"]


# ----------------------------------------------------------------------------- external
def external_held_out(wildcards=None):
    """The cohort sources the leave-one-source-out plan holds out (checkpoint: known once
    the cohort is)."""
    plan = checkpoints.plan_external.get().output.plan
    with open(plan) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in fh]
    return [r["source"] for r in rows if r["held_out"] == "1"]


def external_results(wildcards):
    """summarise_external's inputs: each held-out source's metrics and strata of each
    external model, and the internal test split's (and its predictions) of the first seed's
    classifiers."""
    runs = [(s, m) for s in external_held_out() for m in config["external"]["models"]]
    first = train_seeds("classification")[0]
    return {
        "metrics": [f"results/external/{s}/{m}/metrics.tsv" for s, m in runs],
        "strata": [f"results/external/{s}/{m}/strata.tsv" for s, m in runs],
        "internal_metrics": [f"results/evaluation/{m}/seed_{first}/metrics.tsv" for m in config["external"]["models"]],
        "internal_strata": [f"results/evaluation/{m}/seed_{first}/strata.tsv" for m in config["external"]["models"]],
        "internal_predictions": [
            f"results/evaluation/{m}/seed_{first}/predictions.tsv" for m in config["external"]["models"]
        ],
    }


def external_targets():
    """The plan (which sources could be held out, and why not) always; the models and the
    summary with external.leave_one_source_out."""
    if not active_sources():
        return []
    plan = ["results/external/plan.tsv"]
    return plan + (["results/external/summary.tsv"] if config["external"]["leave_one_source_out"] else [])


STAGES = yaml.safe_load((Path(workflow.basedir) / "workflow" / "stages.yaml").read_text())


def stage_targets(name):
    """What stage `name` of workflow/stages.yaml makes (its `<name>_targets()`)."""
    return globals()[f"{name}_targets"]()


def final_targets():
    """Targets of the default target: every stage's."""
    return [t for name in STAGES for t in stage_targets(name)]


# ----------------------------------------------------------------------------- paper
def paper_models():
    return [m for m in ("local", "global") if m in config["classification"]["models"]]


def paper_runs():
    """The (model, seed) of every classifier of the paper's tables, in classifier_results order."""
    return [[m, s] for m, s in classifier_runs() if m in paper_models()]


def paper_figures():
    """results/paper/<name>.png -> the figure it copies."""
    figs = {
        "fig1_segmentation_jaccard": "results/segmentation/figures/jaccard.png",
        "fig2_segmentation_examples": "results/biomarkers/figures/examples.png",
        "fig3_biomarkers": "results/biomarkers/figures/features.png",
        "fig4_cardiothoracic_ratio": "results/biomarkers/figures/ctr_scatter.png",
        "fig5_lung_histograms": "results/biomarkers/figures/histograms.png",
    }
    first = train_seeds("classification")[0]
    for m in paper_models():
        figs[f"fig6_confusion_{m}"] = f"results/evaluation/{m}/seed_{first}/confusion.png"
    if "local" in paper_models():
        figs["fig7_saliency"] = "results/saliency/local/figure.png"
    if audit_probes():
        figs["fig9_confound_audit"] = "results/audit/figure.png"
    return figs


PAPER_TABLES = {
    "table1_data": "paper_data.rst",
    "table2_splits": "paper_splits.rst",
    "table3_segmentation": "paper_segmentation.rst",
    "table4_biomarker_tests": "paper_biomarkers.rst",
    "table4_biomarker_primary": "paper_biomarkers_primary.rst",
    "table5_classification": "paper_classification.rst",
    "table6_global_vs_local": "paper_comparison.rst",
    "table7_seeds": "paper_seeds.rst",
    "table8_adult_only": "paper_adult_only.rst",
    "table9_source_probe": "paper_source_probe.rst",
    "table10_class_source": "paper_class_source.rst",
    "table11_calibration": "paper_calibration.rst",
    "table12_strata": "paper_strata.rst",
    "table13_external": "paper_external.rst",
    "table14_saliency_sanity": "paper_saliency_sanity.rst",
}
PAPER_FIGURE_CAPTIONS = {
    "fig1_segmentation_jaccard": "segmentation_jaccard.rst",
    "fig2_segmentation_examples": "biomarkers_examples.rst",
    "fig3_biomarkers": "biomarkers_features.rst",
    "fig4_cardiothoracic_ratio": "biomarkers_ctr_scatter.rst",
    "fig5_lung_histograms": "biomarkers_histograms.rst",
    "fig6_confusion_local": "confusion.rst",
    "fig6_confusion_global": "confusion.rst",
    "fig7_saliency": "saliency.rst",
    "fig8_training_curves": "training_curves.rst",
    "fig9_confound_audit": "audit.rst",
}


def caption_text(name):
    return (Path(workflow.basedir) / "workflow" / "report" / name).read_text()


def paper_tables():
    names = ["table1_data", "table2_splits", "table3_segmentation", "table4_biomarker_tests"]
    names += ["table4_biomarker_primary"]
    names += ["table5_classification", "table7_seeds", "table8_adult_only"] if paper_models() else []
    names += ["table6_global_vs_local"] if len(paper_models()) == 2 else []
    names += ["table9_source_probe", "table10_class_source"] if audit_probes() else []
    names += ["table11_calibration", "table12_strata"] if paper_models() else []
    names += ["table13_external"] if config["external"]["leave_one_source_out"] else []
    names += ["table14_saliency_sanity"] if "local" in paper_models() else []
    return names


def paper_documents():
    """The tables and figures of results/paper/ (what its README indexes)."""
    return (
        [f"results/paper/{t}.tsv" for t in paper_tables()]
        + [f"results/paper/{f}.png" for f in paper_figures()]
        + ["results/paper/fig8_training_curves.png"]
    )


def paper_targets():
    if not active_sources():
        return []
    return paper_documents() + ["results/paper/metrics.json", "results/paper/README.md"]


def training_histories(wildcards=None):
    """The training histories of the first seed of each network (the figure's panels)."""
    seg, cls = train_seeds("segmentation")[0], train_seeds("classification")[0]
    out = {
        f"segmentation/{m}/{p}": f"results/segmentation/{m}/{p}/seed_{seg}/history.tsv"
        for m in config["segmentation"]["train_models"]
        for p in segmentation_preps()
    }
    out |= {f"classification/{m}": f"results/classification/{m}/seed_{cls}/history.tsv" for m in paper_models()}
    return out
