# Shared helpers of the workflow: configuration validation, source resolution and target
# lists. Python only; the rules live in the stage files. Facts the package defines (class
# names, synthetic sources, registration advice, shard arithmetic) are imported from it.

from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from patchcxr.data.download import REGISTRATION, registration_message
from patchcxr.data.splits import parse_segmentation_run, segmentation_runs, segmenter_count
from patchcxr.classification.settings import recipe_settings
from patchcxr.configuration import (
    ConfigError,
    check as check_config,
    data_banner,
    enabled_sources,
    made_by_workflow,
    moved_keys,
    schema_errors,
    synthetic_inputs,
)
from patchcxr.models.weights import weights_file_name
from patchcxr.shards import n_shards
from patchcxr.synthetic import SOURCES as SYNTHETIC_SOURCES

# Keys that moved stop with the new key's name, before the schema's generic "additional
# property" error; then the schema validates and fills in its defaults (a misspelt key or a
# value out of range stops here, naming the key); then the keys are checked against each
# other (patchcxr.configuration, unit-tested there). All before any job is scheduled.
if _moved := moved_keys(config):
    raise WorkflowError("\n".join(_moved))
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as _err:
    # one line per problem, the key path and the nearest valid key: not the schema and the
    # configuration that Snakemake's message prints (1,500 lines)
    with open(Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml") as _fh:
        _lines = schema_errors(config, yaml.safe_load(_fh))
    raise WorkflowError("invalid configuration:\n" + "\n".join(_lines or str(_err).splitlines()[:3])) from None
try:
    check_config(config)
except ConfigError as _err:
    raise WorkflowError(str(_err)) from None


#: how every classifier input is made: written once (rule classifier_input_settings), read
#: by the cached inputs, every classifier, source probe and the biomarkers
INPUT_SETTINGS = "results/classification/inputs.json"


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


# The parent run spans the pipeline: start_pipeline_run leaves it running, the end of the
# workflow closes it (FINISHED, or FAILED when a job failed). A later invocation for the
# same configuration closes it again at its own end. A tracking server that cannot be
# reached is reported, not fatal: the results are made.
def close_pipeline_run(failed):
    if not config["tracking"]["enabled"]:
        return
    from patchcxr.tracking import end_pipeline_run

    try:
        end_pipeline_run("results/tracking/pipeline_run.json", failed=failed)
    except Exception as err:  # the results exist whatever the tracking server says
        print(f"MLflow: the pipeline run could not be closed ({type(err).__name__}: {err})")


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
    return enabled_sources(config)


def source_root(name):
    """Folder of a source: its local `path`, else where download_<name> puts it."""
    spec = config["sources"][name]
    return spec["path"] if spec.get("path") else f"resources/raw/{name}"


def check_path(name):
    """A configured `path` must be a folder (the message names the path as given and
    resolved), or one the workflow makes (synthetic sources)."""
    path = config["sources"][name].get("path")
    if path and not (Path(path).is_dir() or made_by_workflow(config, path)):
        where = Path(path).resolve()
        state = "is not a folder" if where.exists() else "does not exist"
        raise WorkflowError(f"sources.{name}.path is {path!r}, which {state} (resolved: {where}): check the path")


# every enabled source's folder is checked when the workflow loads, whatever results/ holds:
# a finished run must not hide a path that no longer exists (the data stage's params carry
# the resolved path, so a changed path reruns it)
for _name in enabled_sources(config):
    check_path(_name)


def check_registration(name):
    """A configured `path` must exist (:func:`check_path`); JSRT and SCR, which cannot be
    downloaded, need a local copy: without a `path` and without one in resources/raw/<name>,
    stop with where to register and where to put the files (checked when the DAG is built,
    so `--lint` still works)."""
    spec = config["sources"][name]
    path = spec.get("path")
    check_path(name)
    if spec["format"] in REGISTRATION and not path and not Path(source_root(name)).is_dir():
        raise WorkflowError(registration_message(spec["format"], name))


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
    rows, quarantine, files, conflicts = [], [], [], []
    with open(plan) as fh:
        next(fh)
        for line in fh:
            name, _, shards = line.rstrip("\n").split("\t")
            quarantine.append(f"results/data/index/{name}.quarantine.tsv")
            files.append(f"results/data/index/{name}.files.tsv")
            conflicts.append(f"results/data/index/{name}.conflicts.tsv")
            for shard in range(int(shards)):
                rows.append(f"results/data/shards/{name}/{shard}.tsv")
                quarantine.append(f"results/data/shards/{name}/{shard}.quarantine.tsv")
    return {"rows": rows, "quarantine": quarantine, "files": files, "conflicts": conflicts}


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


def run_seed(wildcards):
    """The training seed of a run (its {seed} wildcard)."""
    return int(wildcards.seed)


def segmentation_train_params(wildcards):
    """The `train` param of a segmentation run: its settings with the run's seed (a
    cross-fitted run's label, <seed>-f<fold>, names its seed and its fold)."""
    return train_settings("segmentation", parse_segmentation_run(wildcards.seed)[0])


def segmentation_fold(wildcards):
    """The cross-fitting fold a segmentation run holds out (0 for the one segmenter)."""
    return parse_segmentation_run(wildcards.seed)[1]


def segmentation_run_labels(seed):
    """The run labels of one segmentation seed: one, or one per cross-fitting fold
    (splits.segmentation.classified: crossfit)."""
    seg = config["splits"]["segmentation"]
    return segmentation_runs(seed, segmenter_count(seg["classified"], seg["folds"]))


def classifier_train_params(wildcards):
    """The `train` param of a classifier run (mode and seed from its wildcards)."""
    return train_settings("classification", wildcards.seed, wildcards.model)


def first_seed_train_params(wildcards):
    """The `train` param of a leave-one-source-out classifier: the first seed's settings."""
    return train_settings("classification", train_seeds("classification")[0], wildcards.model)


def classifier_weights_path():
    """The torchvision-format ImageNet file the classifier starts from: the rule
    fetch_weights's output (routes torchvision, registry), the user's file (route file), or
    none (route none: from scratch)."""
    cfg = config["classification"]["weights"]
    route = cfg["route"]
    if route == "none":
        return ""
    if route == "file":
        return cfg["path"]  # set: patchcxr.configuration checked it
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


def mask_model_paths():
    """The networks whose masks every later stage uses: segmentation.mask_model trained with
    preprocessing, the first of segmentation.train.seeds; one file, or one per
    cross-fitting fold in fold order (results/splits/mask_folds.tsv says which masks a film)."""
    seed = train_seeds("segmentation")[0]
    model = config["segmentation"]["mask_model"]
    return [f"results/segmentation/{model}/equalised/seed_{r}/model.pt" for r in segmentation_run_labels(seed)]


def segmentation_models(wildcards):
    """Every trained segmentation network, keyed `<model>/<preprocessing>/<run>` (the run:
    the seed, or <seed>-f<fold> for a cross-fitted one)."""
    return {
        f"{m}/{p}/{r}": f"results/segmentation/{m}/{p}/seed_{r}/model.pt"
        for m in config["segmentation"]["train_models"]
        for p in segmentation_preps()
        for s in train_seeds("segmentation")
        for r in segmentation_run_labels(s)
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
        "results/data/intake.tsv",
        "results/data/conflicts.tsv",
        "results/data/cohort.tsv",
        "results/splits/classification.tsv",
        "results/splits/segmentation.tsv",
        "results/splits/mask_folds.tsv",
        *tracking_inputs().values(),
    ]


def segmentation_targets():
    if not active_sources():
        return []
    return [
        "results/segmentation/summary.tsv",
        "results/segmentation/figures/jaccard.png",
        # the lung Dice of the classified films by class (splits.segmentation.classified)
        "results/segmentation/classified_dice.tsv",
    ]


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
        + ["results/evaluation/source_only/metrics.tsv"]
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


def audit_train_params(wildcards):
    """The `train` param of a source probe (its classifier mode from the wildcards)."""
    return audit_train_settings(wildcards.mode)


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
    return ["results/audit/verdict.json", "results/audit/figure.png", "results/audit/within_class.tsv"]


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
    """summarise_external's inputs: each external model's test predictions (and its metrics,
    so that its evaluation runs), and the internal test predictions of the first seed's
    classifiers."""
    runs = [(s, m) for s in external_held_out() for m in config["external"]["models"]]
    first = train_seeds("classification")[0]
    return {
        "metrics": [f"results/external/{s}/{m}/metrics.tsv" for s, m in runs],
        "predictions": [f"results/external/{s}/{m}/predictions.tsv" for s, m in runs],
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
# Every table and figure of results/paper/ is one entry of the package's registry
# (patchcxr.paper.registry: its file, caption, inputs, when it applies, its builder); the
# plan (patchcxr.paper.plan) says what this configuration asks of them, computed once here.
from patchcxr.paper import metrics as paper_headline
from patchcxr.paper import registry as paper_registry
from patchcxr.paper.plan import PaperPlan
from patchcxr.paper.report import report_labels

PAPER_PLAN = PaperPlan.from_config(
    config, audit=bool(audit_probes()), segmentation_preps=segmentation_preps()
)


#: the sentence every report page, caption, metrics.json and results/paper/README.md carry
#: when the run's films are synthetic (empty on real data)
DATA_BANNER = data_banner(config)
#: the report template of every figure and table: the banner, then its caption (params)
CAPTIONED = "../report/captioned.rst"


def caption_text(name):
    return (Path(workflow.basedir) / "workflow" / "report" / name).read_text()


def paper_labels(wildcards=None, name=None):
    """The report's labels of a paper table or figure (number, name, what it holds): the
    report lists them in the paper's order."""
    entry = paper_registry.entry(name or wildcards.name)
    return report_labels(entry.name, entry.about)


def paper_title(wildcards):
    """A paper table's title on its report page."""
    entry = paper_registry.entry(wildcards.name)
    return f"Table {int(report_labels(entry.name, entry.about)['number'])}: {entry.about}"


def paper_names(kind):
    """The names the generic `kind` (table, figure) job makes under this configuration,
    joined as a wildcard constraint."""
    return "|".join(paper_registry.generic_names(PAPER_PLAN, kind))


def paper_inputs(wildcards):
    """A table's or copied figure's inputs (named lists of paths: the registry's)."""
    return paper_registry.entry(wildcards.name).inputs(PAPER_PLAN)


def paper_caption(name):
    """The caption text of table or figure `name` (a file of workflow/report/)."""
    return caption_text(paper_registry.entry(name).caption)


def table_caption(wildcards):
    """The caption param of a paper_tables job (its table from the {name} wildcard)."""
    return paper_caption(wildcards.name)


def paper_runs():
    """The (model, seed) of every classifier of the paper's tables (their inputs' order)."""
    return [[m, s] for m, s in PAPER_PLAN.runs]


def paper_metrics_inputs(wildcards=None):
    return paper_headline.metrics_inputs(PAPER_PLAN)


def paper_captions():
    """results/paper/'s files with their caption texts, in README.md's order."""
    return {e.file: caption_text(e.caption) for e in paper_registry.applicable(PAPER_PLAN)}


def paper_documents():
    """The tables and figures of results/paper/ (what its README indexes)."""
    return [f"results/paper/{e.file}" for e in paper_registry.applicable(PAPER_PLAN)]


def paper_targets():
    if not active_sources():
        return []
    pages = [f"results/report/{e.name}.html" for e in paper_registry.applicable(PAPER_PLAN) if e.kind == "table"]
    return (
        paper_documents()
        + [f"results/paper/{paper_headline.METRICS_FILE}", f"results/paper/{paper_headline.HEADLINE_FILE}"]
        + ["results/paper/README.md", "results/report/about.html"]
        + pages
    )


def training_histories(wildcards=None):
    """The training histories of the first seed of each network (figure 8's panels)."""
    return {name: path for name, [path] in paper_registry.entry("fig8_training_curves").inputs(PAPER_PLAN).items()}


LABEL_PERMUTED = "results/saliency/local/label_permuted"


def label_permuted_input(wildcards=None):
    """The label-permuted classifier of the saliency test (none when
    saliency.label_permutation_epochs is 0)."""
    if not (config["saliency"]["label_permutation_epochs"] and config["saliency"]["sanity_images"]):
        return {}
    return {"permuted": f"{LABEL_PERMUTED}/model.pt"}
