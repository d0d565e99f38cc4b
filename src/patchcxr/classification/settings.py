"""Settings of the classifier (method.md §5): how it is trained and how its inputs are
made. Both are recorded in every model file, and prediction takes them from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from patchcxr.data.labels import class_names
from patchcxr.preprocess import PreprocessSettings


@dataclass(frozen=True)
class ClassifierSettings:
    """Config ``classification.train`` (paper values as defaults)."""

    mode: str = "local"  # local (patches) | global (whole image)
    labels: str = "label4"  # label4 (paper: viral and COVID-19 merged) | label5
    patch: int = 224
    centre: str = "joint"
    border: str = "shift"
    batch_size: int = 16
    epochs: int = 100
    lr: float = 1e-5
    weight_decay: float = 0.1
    l1: float = 1e-5
    flip: float = 0.5
    rotate: int = 5
    k_val: int = 20
    patience: int | None = 50
    seed: int = 2020
    #: images drawn per epoch (one patch each); None = the number of training images (the
    #: paper's epoch). More draws give a small cohort enough steps per epoch.
    draws: int | None = None
    #: explicit output classes, values of the inputs' column ``labels``; None = the label
    #: scheme's classes. The confound audit trains the same classifier on ``source`` with
    #: the source names here (:mod:`patchcxr.audit`).
    targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.targets is not None:  # a list read back from a model file's JSON
            object.__setattr__(self, "targets", tuple(self.targets))

    @property
    def classes(self) -> tuple[str, ...]:
        """The network's output classes, in order."""
        return self.targets if self.targets is not None else class_names(self.labels)


def settings_from(cfg: Mapping[str, Any]) -> ClassifierSettings:
    """:class:`ClassifierSettings` from a ``classification.train`` mapping (plus ``mode``);
    keys it does not know are ignored."""
    known = {k: cfg[k] for k in asdict(ClassifierSettings()) if k in cfg}
    return ClassifierSettings(**known)


@dataclass(frozen=True)
class InputSettings:
    """How a classifier input is made (config ``classification.input_size`` and
    ``preprocessing``): the harmonised image preprocessed, resized to ``size²`` and
    multiplied by its lung mask."""

    size: int = 1024
    preprocessing: PreprocessSettings = field(default_factory=PreprocessSettings)
    #: which lung mask makes the input (:mod:`patchcxr.masks`): predicted for every image
    #: (the paper), or ground truth where the source has one (a sensitivity analysis)
    mask_source: str = "predicted"

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "preprocessing": self.preprocessing.to_dict(), "mask_source": self.mask_source}

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
        "arch": "resnet18",
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
