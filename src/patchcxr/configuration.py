"""Checks of the workflow configuration that the JSON schema cannot express: keys that moved
(checked before the schema, so an old configuration gets the new key's name instead of a
generic "additional property" error) and the agreement between keys (checked after it).
The workflow (``workflow/rules/common.smk``) stops with these messages before any job is
planned; each is unit-tested here without Snakemake (tests/test_config.py)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from patchcxr.classification.settings import recipe_settings
from patchcxr.data.labels import LABEL5

#: keys that moved → where they live now
MOVED_KEYS: dict[tuple[str, ...], str] = {
    ("segmentation", "gamma"): "preprocessing.gamma",
    ("segmentation", "crop_blank_band"): "preprocessing.crop_blank_band",
    # the patch analysis draws the classifier's patches, scaled to biomarkers.size
    ("biomarkers", "patch"): "classification.train.patch",
    # one training run per seed of a list
    ("segmentation", "train", "seed"): "segmentation.train.seeds (a list)",
    ("classification", "train", "seed"): "classification.train.seeds (a list)",
    # the mask that makes the classifier's inputs is the classifier's setting
    ("segmentation", "mask_source"): "classification.mask_source",
    # the audit's verdict: a permutation test and an equivalence margin, a purity gate
    ("audit", "margin"): "audit.alpha (a permutation test decides 'reads the source') and audit.equivalence",
    ("audit", "association"): "audit.purity (the source-only rule's recall and precision; Cramér's V is reported only)",
    # one minimum n for every inferential figure
    ("classification", "inference", "strata_min_patients"): "statistics.min_patients",
    ("audit", "permutations"): "statistics.permutations",
    # ImageNet weights come by one of four routes
    ("classification", "weights", "download"): "classification.weights.route (torchvision | file | registry | none)",
}


class ConfigError(ValueError):
    """A configuration the workflow cannot run: the message names the key and the fix."""


def moved_keys(config: Mapping[str, Any]) -> list[str]:
    """One message per key of :data:`MOVED_KEYS` that ``config`` still sets."""
    errors = []
    for path, new in MOVED_KEYS.items():
        node: Any = config
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and path[-1] in node:
            errors.append(f"config key {'.'.join(path)} has moved: set {new} instead (config/config.yaml)")
    return errors


def enabled_sources(config: Mapping[str, Any]) -> list[str]:
    """Names of the enabled sources, in configuration order."""
    return [name for name, spec in config["sources"].items() if spec.get("enabled", True)]


#: where the workflow writes the synthetic sources it generates (rule synthetic_source)
SYNTHETIC_ROOT = "results/synthetic"


def made_by_workflow(config: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` is the folder of a synthetic source this configuration generates."""
    return path in {f"{SYNTHETIC_ROOT}/{s}" for s in config["synthetic"]["sources"]}


def synthetic_inputs(config: Mapping[str, Any]) -> list[str]:
    """The enabled sources whose films are the workflow's synthetic phantoms (their ``path``
    is a generated folder), in configuration order."""
    return [n for n in enabled_sources(config) if made_by_workflow(config, config["sources"][n].get("path") or "")]


def data_banner(config: Mapping[str, Any]) -> str:
    """One sentence that says the results measure nothing when their films are synthetic
    (every report page, caption, ``metrics.json`` and ``results/paper/README.md`` carry it);
    empty when every enabled source is real data."""
    made, enabled = synthetic_inputs(config), enabled_sources(config)
    if not made:
        return ""
    names = ", ".join(made)
    if len(made) == len(enabled):
        return (
            f"SYNTHETIC DATA: every film of this run is a phantom the workflow generated ({names}). "
            "Its numbers test the software; they measure nothing about chest radiographs or COVID-19."
        )
    return (
        f"PARTLY SYNTHETIC DATA: {len(made)} of {len(enabled)} enabled sources are phantoms the workflow "
        f"generated ({names}). Numbers that pool them with real films measure nothing about chest radiographs."
    )


def cross_key_errors(config: Mapping[str, Any]) -> list[str]:
    """Disagreements between keys of a schema-valid ``config`` (defaults filled in), one
    message each, in the order of the configuration file."""
    errors = []
    active = enabled_sources(config)
    for name in active:
        masks = config["sources"][name].get("masks")
        if masks and masks not in active:
            errors.append(f"sources.{name}.masks names {masks!r}, which is not an enabled source")
    for finding, label in config["labels"]["findings"].items():
        if label not in LABEL5:
            errors.append(f"labels.findings.{finding}: {label!r} is not one of the classes {', '.join(LABEL5)}")
    errors += [
        f"data.cohort_sources names {name!r}, which is not an enabled source"
        for name in config["data"]["cohort_sources"]
        if name not in active
    ]
    seg = config["segmentation"]
    errors += [
        f"segmentation.train_models names {name!r}, which is not in segmentation.models"
        for name in seg["train_models"]
        if name not in seg["models"]
    ]
    if seg["mask_model"] not in seg["train_models"]:
        errors.append(
            f"segmentation.mask_model {seg['mask_model']!r} is not one of segmentation.train_models "
            f"({', '.join(seg['train_models'])})"
        )
    cls = config["classification"]
    # the chosen training recipe applies to every classifier mode
    for mode in cls["models"]:
        try:
            recipe_settings(cls, 0, mode)
        except ValueError as err:
            errors.append(str(err))
    weights = cls["weights"]
    if weights["route"] == "file" and not weights["path"]:
        errors.append("classification.weights.route is file: set classification.weights.path (and sha256)")
    ext = config["external"]
    if ext["leave_one_source_out"] and not set(ext["models"]) <= set(cls["models"]):
        errors.append(
            f"external.models {ext['models']} must be among classification.models "
            f"{cls['models']}: each held-out source is shown beside that classifier's internal test"
        )
    return list(dict.fromkeys(errors))  # a recipe error found for two modes is said once


def check(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` with every cross-key error of ``config`` (one per line)."""
    errors = cross_key_errors(config)
    if errors:
        raise ConfigError("\n".join(errors))


#: the most schema errors one message lists (the first usually explains the rest)
MAX_SCHEMA_ERRORS = 5


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    return _clip(repr(value), 60)


def schema_errors(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """One line per way ``config`` breaks ``schema``: the key path, the problem, and the
    nearest valid key or the allowed values; never the schema or the configuration
    themselves (at most :data:`MAX_SCHEMA_ERRORS` lines, the rest counted)."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    lines: list[str] = []
    for err in sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.path]):
        where = _key_path(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
            allowed = sorted(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(allowed)):
                here = f"{where}.{key}" if err.absolute_path else str(key)
                near = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}?" if near else f"allowed: {', '.join(allowed)}"
                lines.append(f"{here}: unknown key; {hint}")
        elif err.validator == "enum":
            choices = ", ".join(repr(v) for v in err.validator_value)
            lines.append(f"{where}: {_short(err.instance)} is not one of {choices}")
        elif err.validator in ("anyOf", "oneOf", "allOf"):
            described = err.schema.get("description", "")
            lines.append(
                f"{where}: {_short(err.instance)} matches none of the allowed forms"
                + (f" ({described})" if described else "")
            )
        else:
            lines.append(f"{where}: {_clip(err.message, 160)}")
    lines = list(dict.fromkeys(lines))
    if len(lines) > MAX_SCHEMA_ERRORS:
        lines = [*lines[:MAX_SCHEMA_ERRORS], f"… and {len(lines) - MAX_SCHEMA_ERRORS} more"]
    return lines
