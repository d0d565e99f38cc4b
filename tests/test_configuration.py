"""The configuration checks the schema cannot make (patchcxr.configuration), without Snakemake."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from patchcxr.configuration import ConfigError, check, cross_key_errors, moved_keys
from tests.conftest import load_config


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return load_config("config/demo.yaml")


def test_every_shipped_configuration_passes(demo: dict[str, Any]) -> None:
    check(demo)
    assert cross_key_errors(load_config()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["sources"]["scr"].update(masks="nowhere"), "sources.scr.masks names 'nowhere'"),
        (lambda c: c["labels"]["findings"].update(fungal="mould"), "labels.findings.fungal: 'mould' is not one of"),
        (lambda c: c["data"]["cohort_sources"].append("elsewhere"), "data.cohort_sources names 'elsewhere'"),
        (lambda c: c["segmentation"]["train_models"].append("vgg"), "segmentation.train_models names 'vgg'"),
        (lambda c: c["segmentation"].update(mask_model="vgg"), "segmentation.mask_model 'vgg' is not one of"),
        (lambda c: c["classification"].update(recipe="nonesuch"), "nonesuch"),
        (
            lambda c: c["classification"]["weights"].update(route="file", path=""),
            "classification.weights.route is file: set classification.weights.path",
        ),
        (
            lambda c: c.update(
                external=c["external"] | {"leave_one_source_out": True, "models": ["local", "global"]},
                classification=c["classification"] | {"models": ["local"]},
            ),
            "external.models ['local', 'global'] must be among classification.models ['local']",
        ),
    ],
)
def test_each_disagreement_between_keys_is_named(demo: dict[str, Any], change: Any, message: str) -> None:
    config = copy.deepcopy(demo)
    change(config)
    errors = cross_key_errors(config)
    assert len(errors) == 1 and message in errors[0], errors
    with pytest.raises(ConfigError, match=re.escape(message)):
        check(config)


def test_two_errors_are_both_named(demo: dict[str, Any]) -> None:
    config = copy.deepcopy(demo)
    config["segmentation"]["mask_model"] = "vgg"
    config["data"]["cohort_sources"].append("elsewhere")
    with pytest.raises(ConfigError) as err:
        check(config)
    assert "segmentation.mask_model" in str(err.value) and "data.cohort_sources" in str(err.value)


def test_a_moved_key_names_its_new_home() -> None:
    assert moved_keys({"segmentation": {"gamma": 0.5, "train": {"seed": 1}}}) == [
        "config key segmentation.gamma has moved: set preprocessing.gamma instead (config/config.yaml)",
        "config key segmentation.train.seed has moved: set segmentation.train.seeds (a list) instead "
        "(config/config.yaml)",
    ]
    assert moved_keys({"segmentation": {"train": {"seeds": [1]}}}) == []
    # the mask that makes the classifier's inputs is the classifier's setting
    assert moved_keys({"segmentation": {"mask_source": "predicted"}}) == [
        "config key segmentation.mask_source has moved: set classification.mask_source instead (config/config.yaml)"
    ]
