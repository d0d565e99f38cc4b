"""One home per default (issue 27): config/config.yaml holds every value it sets, the
schema gives defaults only to the keys config.yaml leaves out, and the package's settings
classes (whose defaults serve tests and the command line) agree with both."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import yaml

from tests.conftest import ROOT, SCHEMA, load_config

#: a path segment standing for every entry of a mapping of user-named entries (sources)
ANY = "*"


class Default(NamedTuple):
    """A ``default`` of the schema at a configuration path."""

    path: tuple[str, ...]
    value: Any
    #: value: a setting's default; structural: an object's ``{}`` that only lets its
    #: members' defaults apply; template: the default of every entry of a user-named mapping
    kind: str


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` (a ``#/$defs/`` name) merged in; the node's own keys win."""
    out = dict(node)
    while "$ref" in out:
        ref = out.pop("$ref")
        assert ref.startswith("#/$defs/"), ref
        out = {**schema["$defs"][ref.removeprefix("#/$defs/")], **out}
    return out


def schema_defaults(schema: Mapping[str, Any]) -> list[Default]:
    """Every ``default`` reachable from the schema's root, by configuration path: fixed keys
    (``properties``, through ``$ref`` too) by name, the entries of a user-named mapping
    (``additionalProperties``) as :data:`ANY`."""
    found: list[Default] = []

    def walk(node: Mapping[str, Any], path: tuple[str, ...], template: bool) -> None:
        node = _resolve(schema, node)
        for name, sub in (node.get("properties") or {}).items():
            sub = _resolve(schema, sub)
            here = (*path, name)
            if "default" in sub:
                value = sub["default"]
                structural = value == {} and "properties" in sub
                kind = "structural" if structural else "template" if template else "value"
                found.append(Default(here, value, kind))
            walk(sub, here, template)
        entries = node.get("additionalProperties")
        if isinstance(entries, Mapping):
            walk(entries, (*path, ANY), True)

    walk(schema, (), False)
    return found


def config_values(config: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """The values of ``config`` at ``path`` (:data:`ANY` matches every entry of a mapping;
    an integer indexes a list), with their concrete paths; nothing where a key is absent."""
    if not path:
        yield (), config
        return
    head, rest = path[0], path[1:]
    if head == ANY and isinstance(config, Mapping):
        for key, value in config.items():
            for sub, found in config_values(value, rest):
                yield (key, *sub), found
    elif isinstance(head, int) and isinstance(config, list) and head < len(config):
        for sub, found in config_values(config[head], rest):
            yield (head, *sub), found
    elif isinstance(config, Mapping) and head in config:
        for sub, found in config_values(config[head], rest):
            yield (head, *sub), found


def _plain(value: Any) -> Any:
    """Tuples as lists (a dataclass's tuple default against the configuration's list)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def compare(schema: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(disagreements, duplicates) of the schema's defaults with ``config``: a default
    whose key ``config`` sets to another value, and one whose key it sets to the same
    value (two homes). Entries of a user-named mapping may set their own value (the
    template's default is the one home of the entries that leave the key out), but not
    repeat the template's."""
    disagree, duplicate = [], []
    for d in schema_defaults(schema):
        if d.kind == "structural":
            continue
        for where, value in config_values(config, d.path):
            name = ".".join(map(str, where))
            if value == d.value:
                duplicate.append(f"{name}: {_short(value)} is also the schema's default")
            elif d.kind == "value":
                disagree.append(f"{name}: config {_short(value)} != schema default {_short(d.value)}")
    return disagree, duplicate


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def test_compare_finds_a_disagreement_and_a_duplicate_in_a_toy_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "train": {
                "type": "object",
                "default": {},
                "properties": {
                    "lr": {"type": "number", "default": 0.1},
                    "epochs": {"$ref": "#/$defs/count", "default": 10},
                    "seed": {"type": "integer", "default": 1},
                },
            },
            "sources": {"type": "object", "additionalProperties": {"$ref": "#/$defs/source"}},
        },
        "$defs": {
            "count": {"type": "integer", "minimum": 1},
            "source": {"type": "object", "properties": {"enabled": {"type": "boolean", "default": True}}},
        },
    }
    kinds = {d.path: d.kind for d in schema_defaults(schema)}
    assert kinds == {
        ("train",): "structural",
        ("train", "lr"): "value",
        ("train", "epochs"): "value",
        ("train", "seed"): "value",
        ("sources", ANY, "enabled"): "template",
    }
    config = {"train": {"lr": 0.2, "epochs": 10}, "sources": {"a": {"enabled": False}, "b": {"enabled": True}}}
    disagree, duplicate = compare(schema, config)
    assert disagree == ["train.lr: config 0.2 != schema default 0.1"]
    assert duplicate == [
        "train.epochs: 10 is also the schema's default",
        "sources.b.enabled: True is also the schema's default",
    ]
    # the seed's one home is the schema (config leaves it out); `a` sets its own value
    assert compare(schema, {"train": {}, "sources": {"a": {"enabled": False}}}) == ([], [])


def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


def _config_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_the_schema_defaults_agree_with_config_yaml() -> None:
    disagree, _ = compare(_schema(), _config_yaml())
    assert not disagree, "\n".join(disagree)


def test_a_value_has_one_home_config_yaml_or_the_schema() -> None:
    # config.yaml (the paper's settings, the documented file) keeps the values it sets; the
    # schema keeps a default only for a key config.yaml leaves out
    _, duplicate = compare(_schema(), _config_yaml())
    assert not duplicate, "delete these schema defaults (config/config.yaml holds them):\n" + "\n".join(duplicate)


def test_the_schema_defaults_that_remain_are_for_keys_config_yaml_leaves_out() -> None:
    config = _config_yaml()
    values = [d for d in schema_defaults(_schema()) if d.kind == "value"]
    assert values and all(not list(config_values(config, d.path)) for d in values)
    # and the schema still fills them into the workflow's configuration, wherever their
    # object is there (a synthetic source's artefact only when the source has one)
    validated = load_config()
    for d in values:
        for where, parent in config_values(validated, d.path[:-1]):
            assert parent[d.path[-1]] == d.value, (*where, d.path[-1])


# ----------------------------------------------------------------------------- settings classes
def _settings_keys() -> dict[type, tuple[dict[str, tuple[str | int, ...]], set[str]]]:
    """Each settings class: its fields' configuration paths, and the fields that are no
    configuration key (with the reason beside them)."""
    from patchcxr.biomarkers.features import FeatureSettings
    from patchcxr.classification.settings import ClassifierSettings, InputSettings
    from patchcxr.preprocess import PreprocessSettings
    from patchcxr.segmentation.train import SegmentationTrainSettings

    classifier_train = {
        f.name: ("classification", "train", f.name)
        for f in dataclasses.fields(ClassifierSettings)
        if f.name not in ("mode", "targets", "backbone", "recipe", "seed")
    }
    segmentation_train = {
        f.name: ("segmentation", "train", f.name)
        for f in dataclasses.fields(SegmentationTrainSettings)
        if f.name != "seed"
    }
    return {
        PreprocessSettings: (
            {"gamma": ("preprocessing", "gamma"), "crop_band": ("preprocessing", "crop_blank_band")},
            # size: None = the stage resizes on its own (segmentation sets segmentation.size);
            # equalise: the arm of the segmentation's ablation (a rule wildcard)
            {"size", "equalise"},
        ),
        ClassifierSettings: (
            classifier_train
            | {
                "backbone": ("classification", "backbone"),
                "recipe": ("classification", "recipe"),
                "seed": ("classification", "train", "seeds", 0),  # the first run's
            },
            {"mode", "targets"},  # what is trained: the rule's wildcard, the audit's sources
        ),
        InputSettings: (
            {"size": ("classification", "input_size"), "mask_source": ("classification", "mask_source")},
            {"preprocessing"},  # a PreprocessSettings(), checked as its own class
        ),
        FeatureSettings: (
            {
                "size": ("biomarkers", "size"),
                "patches": ("biomarkers", "patches"),
                "seed": ("biomarkers", "seed"),
                "classifier_input": ("classification", "input_size"),
                "mask_source": ("classification", "mask_source"),
            },
            {"preprocessing", "sampler"},  # PreprocessSettings() and ClassifierSettings(), checked as theirs
        ),
        SegmentationTrainSettings: (
            segmentation_train | {"seed": ("segmentation", "train", "seeds", 0)},
            set(),
        ),
    }


def _field_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    assert field.default_factory is not dataclasses.MISSING, f"{field.name} has no default"
    return field.default_factory()


def test_every_field_of_the_settings_classes_is_mapped_or_said_not_to_be_a_setting() -> None:
    for cls, (mapped, not_config) in _settings_keys().items():
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(mapped) | not_config == names, f"{cls.__name__}: {sorted(names ^ (set(mapped) | not_config))}"
        assert not set(mapped) & not_config, cls.__name__


def settings_disagreements(
    keys: Mapping[type, Mapping[str, tuple[str | int, ...]]], config: Mapping[str, Any]
) -> list[str]:
    """Each settings class's field default against the configuration value at the field's
    path: one line per field whose default differs or whose key the configuration lacks."""
    wrong = []
    for cls, mapped in keys.items():
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, path in mapped.items():
            key = ".".join(map(str, path))
            found = [v for _, v in config_values(config, path)]
            if not found:
                wrong.append(f"{cls.__name__}.{name}: the configuration has no {key}")
            elif _plain(default := _field_default(fields[name])) != found[0]:
                wrong.append(f"{cls.__name__}.{name} = {default!r}, but {key} = {found[0]!r}")
    return wrong


def test_the_settings_comparison_reports_a_drifted_default_and_a_missing_key() -> None:
    @dataclasses.dataclass(frozen=True)
    class Toy:
        gamma: float = 0.7
        milestones: tuple[int, ...] = (70, 80)
        seed: int = 7
        size: int = 256

    config = {"prep": {"gamma": 0.5}, "train": {"milestones": [70, 80], "seeds": [7, 8]}}
    keys = {
        Toy: {
            "gamma": ("prep", "gamma"),
            "milestones": ("train", "milestones"),
            "seed": ("train", "seeds", 0),
            "size": ("prep", "size"),
        }
    }
    assert settings_disagreements(keys, config) == [
        "Toy.gamma = 0.7, but prep.gamma = 0.5",
        "Toy.size: the configuration has no prep.size",
    ]


def test_the_settings_classes_defaults_equal_the_configuration() -> None:
    # config.yaml completed with the schema's defaults: what the workflow runs with
    classes = _settings_keys()
    wrong = settings_disagreements({cls: mapped for cls, (mapped, _) in classes.items()}, load_config())
    assert not wrong, "\n".join(wrong)
    for cls, (_, not_config) in classes.items():  # nested settings hold their own defaults
        nested = {f.name: f for f in dataclasses.fields(cls) if f.name in not_config & {"preprocessing", "sampler"}}
        assert all(type(_field_default(f)) in classes for f in nested.values()), cls.__name__


def test_function_defaults_that_mirror_a_configuration_section_equal_it() -> None:
    # predict_shard's keyword defaults serve tests and benchmarks that call it directly
    from patchcxr.segmentation.predict import predict_shard

    predict = load_config()["segmentation"]["predict"]
    params = inspect.signature(predict_shard).parameters
    for param, key in (("batch_size", "batch_size"), ("cleanup", "cleanup"), ("lung_range", "lung_fraction")):
        assert _plain(params[param].default) == predict[key], param
    # the resample counts of the segmentation evaluation and the biomarkers' tests
    from patchcxr.biomarkers.statistics import compare_classes, compare_groups
    from patchcxr.segmentation.evaluate import evaluate_models, summarise

    config = load_config()
    for fn in (evaluate_models, summarise):
        assert inspect.signature(fn).parameters["n_boot"].default == config["segmentation"]["bootstrap"], fn
    for fn in (compare_classes, compare_groups):
        assert inspect.signature(fn).parameters["n_boot"].default == config["biomarkers"]["bootstrap"], fn
