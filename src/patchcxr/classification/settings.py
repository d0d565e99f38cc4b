"""Settings of the classifier (method.md §5): how it is trained and how its inputs are
made. Both are recorded in every model file, and prediction takes them from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from patchcxr.data.labels import class_names
from patchcxr.io import atomic_write_text
from patchcxr.preprocess import PreprocessSettings

#: optimisers, learning-rate schedules, batch-norm handling and model-selection metrics
#: of :class:`ClassifierSettings` (the paper's first in each)
OPTIMISERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")
BATCH_NORMS = ("train", "frozen")
SELECT_METRICS = ("val_macro_f1", "val_auc", "val_loss")


@dataclass(frozen=True)
class ClassifierSettings:
    """Config ``classification.train`` with the chosen recipe's keys over it and the
    backbone (paper values as defaults: ResNet-18, Adam 1e-5, weight decay 0.1, L1 1e-5,
    constant rate, selection by validation macro-F1)."""

    mode: str = "local"  # local (patches) | global (whole image)
    labels: str = "label4"  # label4 (paper: viral and COVID-19 merged) | label5
    #: the network (:data:`patchcxr.models.classifier.BACKBONES`): resnet18 (the paper's)
    backbone: str = "resnet18"
    #: the named recipe these settings came from (config ``classification.recipe``): a label
    #: for tables and model files; the settings themselves are the fields of this class
    recipe: str = "paper"
    patch: int = 224
    centre: str = "joint"
    border: str = "shift"
    batch_size: int = 16
    epochs: int = 100
    optimizer: str = "adam"
    lr: float = 1e-5
    #: learning rate of the trunk (every layer but the head) when it differs from ``lr``:
    #: discriminative fine-tuning of pretrained weights; None = ``lr``
    trunk_lr: float | None = None
    weight_decay: float = 0.1
    l1: float = 1e-5
    #: constant (the paper) or cosine decay to zero over the run, after ``warmup_epochs`` of
    #: linear warm-up (both per step)
    schedule: str = "constant"
    warmup_epochs: int = 0
    #: epochs that train the head alone before the whole network (staged unfreezing)
    freeze_epochs: int = 0
    #: train: batch norm updates its statistics (the paper); frozen: the trunk's batch-norm
    #: layers keep their (pretrained) statistics, their affine parameters still learn
    batch_norm: str = "train"
    label_smoothing: float = 0.0
    flip: float = 0.5
    rotate: int = 5
    #: intensity augmentation: each draw's grey levels raised to ``exp(u)``, ``u`` uniform in
    #: ``[-intensity, intensity]`` (0 and 1, so the mask, stay put); 0 = none (the paper)
    intensity: float = 0.0
    k_val: int = 20
    #: the validation metric that picks the kept epoch (paper: macro-F1 of the hard vote)
    select: str = "val_macro_f1"
    patience: int | None = 50
    seed: int = 2020
    #: images drawn per epoch (one patch each); None = ``draws_per_film`` × the number of
    #: training images (1: the paper's epoch). More draws give more steps per epoch.
    draws: int | None = None
    draws_per_film: float = 1.0
    #: explicit output classes, values of the inputs' column ``labels``; None = the label
    #: scheme's classes. The confound audit trains the same classifier on ``source`` with
    #: the source names here (:mod:`patchcxr.audit`).
    targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.targets is not None:  # a list read back from a model file's JSON
            object.__setattr__(self, "targets", tuple(self.targets))
        for name, value, allowed in (
            ("optimizer", self.optimizer, OPTIMISERS),
            ("schedule", self.schedule, SCHEDULES),
            ("batch_norm", self.batch_norm, BATCH_NORMS),
            ("select", self.select, SELECT_METRICS),
        ):
            if value not in allowed:
                raise ValueError(f"classifier setting {name} must be one of {', '.join(allowed)}, got {value!r}")

    @property
    def classes(self) -> tuple[str, ...]:
        """The network's output classes, in order."""
        return self.targets if self.targets is not None else class_names(self.labels)

    def draws_for(self, n_films: int) -> int:
        """Draws per epoch for ``n_films`` training films."""
        return int(self.draws) if self.draws else max(1, round(self.draws_per_film * n_films))


def settings_from(cfg: Mapping[str, Any]) -> ClassifierSettings:
    """:class:`ClassifierSettings` from a ``classification.train`` mapping (plus ``mode``,
    ``backbone`` and ``recipe``: :func:`recipe_settings` makes such a mapping from the
    configuration); keys it does not know are ignored."""
    known = {k: cfg[k] for k in asdict(ClassifierSettings()) if k in cfg}
    return ClassifierSettings(**known)


#: the classifier modes, each of which a recipe may give keys of its own
MODES = ("local", "global")
#: settings a recipe cannot set: what is trained (the mode, the targets, the backbone),
#: the recipe's own name and the run's seed
_NOT_IN_RECIPES = ("mode", "targets", "seed", "backbone", "recipe")


def _check_recipe_keys(where: str, keys: Mapping[str, Any]) -> None:
    defaults = asdict(ClassifierSettings())
    unknown = sorted(set(keys) - set(defaults) - set(_NOT_IN_RECIPES))
    fixed = sorted(set(keys) & set(_NOT_IN_RECIPES))
    if unknown or fixed:
        what = ", ".join(unknown + fixed)
        raise ValueError(f"{where}: {what} cannot be set by a recipe (classifier settings only)")
    for key, value in keys.items():
        nullable = "None" in str(ClassifierSettings.__dataclass_fields__[key].type)
        if not (value is None and nullable) and not _same_kind(value, defaults[key]):
            raise ValueError(f"{where}.{key}: {value!r} is not of the setting's kind (default {defaults[key]!r})")


def recipe_settings(classification: Mapping[str, Any], seed: int, mode: str = "local") -> dict[str, Any]:
    """One training run's settings from the configuration's ``classification`` section:
    ``train`` (without its list of seeds), the chosen recipe's keys over it
    (``recipes[recipe]``: a recipe wins over ``train`` where both set a key), the recipe's
    keys for ``mode`` over those (a recipe's ``local:`` or ``global:`` mapping: the two
    classifiers see their films differently, a patch per draw or the whole film), the
    ``backbone``, the recipe's name, the ``mode`` and the run's ``seed``.

    Raises:
        ValueError: a recipe the configuration does not define, a recipe key that is no
            classifier setting or not of its kind, or an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"classifier mode must be one of {', '.join(MODES)}, got {mode!r}")
    name = str(classification.get("recipe", "paper"))
    recipes = classification.get("recipes", {}) or {}
    if name not in recipes:
        raise ValueError(f"classification.recipe {name!r} is not among classification.recipes: {', '.join(recipes)}")
    recipe = dict(recipes[name] or {})
    per_mode = {m: dict(recipe.pop(m, None) or {}) for m in MODES}
    _check_recipe_keys(f"classification.recipes.{name}", recipe)
    for m, keys in per_mode.items():
        _check_recipe_keys(f"classification.recipes.{name}.{m}", keys)
    train = {k: v for k, v in classification.get("train", {}).items() if k != "seeds"}
    fixed = {"backbone": str(classification.get("backbone", "resnet18")), "recipe": name, "mode": mode}
    return train | recipe | per_mode[mode] | fixed | {"seed": int(seed)}


def _same_kind(value: Any, default: Any) -> bool:
    """Whether a recipe's value fits a setting whose default is ``default`` (a number for a
    number, an integer for an integer, a string for a string; None-able settings take
    None or a number)."""
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if default is None:
        return value is None or isinstance(value, int | float)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


@dataclass(frozen=True)
class InputSettings:
    """How a classifier input is made (config ``classification.input_size``,
    ``classification.mask_source`` and ``preprocessing``): the harmonised image
    preprocessed, resized to ``size²`` and multiplied by its lung mask. The workflow writes
    them once beside the cached inputs (``results/classification/inputs.json``,
    :meth:`write`), and every reader (training, source probes, biomarkers) reads that file;
    prediction reads them from the model file."""

    size: int = 1024
    preprocessing: PreprocessSettings = field(default_factory=PreprocessSettings)
    #: which lung mask makes the input (:mod:`patchcxr.masks`): predicted for every image
    #: (the paper), or ground truth where the source has one (a sensitivity analysis)
    mask_source: str = "predicted"

    def __post_init__(self) -> None:
        # the input is always equalised, at `size`: the preprocessing's own network size and
        # min-max arm are the segmentation's, and a classifier file does not record them
        if self.preprocessing.size is not None or not self.preprocessing.equalise:
            raise ValueError(
                f"classifier inputs are equalised and resized to InputSettings.size ({self.size}); "
                f"got preprocessing {self.preprocessing}"
            )

    def to_dict(self) -> dict[str, Any]:
        """What a classifier model file records (the preprocessing's ``gamma`` and
        ``crop_band``: the keys these files have always had)."""
        prep = self.preprocessing
        return {
            "size": self.size,
            "preprocessing": {"gamma": prep.gamma, "crop_band": prep.crop_band},
            "mask_source": self.mask_source,
        }

    @classmethod
    def from_config(cls, classification: Mapping[str, Any], preprocessing: Mapping[str, Any]) -> InputSettings:
        """From the ``classification`` section (``input_size``, ``mask_source``) and the
        ``preprocessing`` section."""
        return cls(
            size=int(classification["input_size"]),
            preprocessing=PreprocessSettings.from_config(preprocessing),
            mask_source=str(classification["mask_source"]),
        )

    def write(self, path: Path | str) -> None:
        """The settings as a JSON file (:meth:`to_dict`, keys sorted), atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path | str) -> InputSettings:
        """The settings :meth:`write` wrote."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSettings:
        return cls(
            size=int(d["size"]),
            preprocessing=PreprocessSettings(**d["preprocessing"]),
            mask_source=str(d.get("mask_source", "predicted")),
        )


def model_file_fields(settings: ClassifierSettings, inputs: InputSettings) -> dict[str, Any]:
    """What a classifier model file records besides its weights: the architecture, the
    classes, the training settings and the input settings (JSON text: plain containers)."""
    return {
        "arch": settings.backbone,
        "classes": list(settings.classes),
        "input_size": inputs.size,
        "settings": json.dumps(asdict(settings)),
        "inputs": json.dumps(inputs.to_dict()),
    }


def settings_of_model_file(state: Mapping[str, Any]) -> tuple[ClassifierSettings, InputSettings]:
    """The training and input settings a model file records (:func:`model_file_fields`).

    Raises:
        ValueError: a file written before the input settings were recorded.
    """
    if "inputs" not in state:
        raise ValueError(
            "this classifier file does not record its input settings (written by an older patchcxr): retrain it"
        )
    return ClassifierSettings(**json.loads(state["settings"])), InputSettings.from_dict(json.loads(state["inputs"]))
