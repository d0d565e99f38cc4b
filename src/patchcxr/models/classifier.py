"""The classifier networks (method.md §5.1): a torchvision backbone with its last layer
sized to the classes. ResNet-18 is the paper's; MobileNetV2 is the backbone whose ImageNet
weights a cluster without internet can still obtain (:mod:`patchcxr.models.weights`).

Each backbone is described once, in :data:`BACKBONES`: its torchvision constructor, the
layer Grad-CAM reads (the trunk's last feature map), the width of that map, its stride,
the final linear layer, the input normalisation its ImageNet weights expect and the last
stage the model-parameter randomisation test re-initialises. Everything that must reach
inside a network (Grad-CAM, the shared trunk, the randomisation test, prediction) goes
through :func:`features`, :func:`head` and :func:`linear`, never through a backbone's own
attribute names. State dicts keep torchvision's key names, so a torchvision ImageNet file
loads as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

log = logging.getLogger(__name__)

#: ImageNet statistics: torchvision's ImageNet weights expect inputs normalised so
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """What the rest of the package needs to know of a classifier network.

    Attributes:
        name: the configuration's name (``classification.backbone``).
        constructor: torchvision's builder of the architecture (``torchvision.models.<name>``).
        gradcam_layer: the module whose output is the trunk's last feature map (Grad-CAM's
            layer, :func:`features`'s output).
        feature_width: channels of that map (the final linear layer's input).
        stride: input pixels per feature cell of that map.
        head_layer: the final linear layer (sized to the classes; absent from an ImageNet
            trunk-only file).
        stages: the trunk's parameterised stages, last first: the randomisation cascade
            re-initialises the head, then these one after the other down to the first
            convolution (every trunk parameter is in one stage).
        mean, std: input normalisation (per RGB channel; grey is replicated to 3 channels).
        torchvision_weights: torchvision's ImageNet weight enum (the download route).
        parameters_4: trainable parameters with a 4-class head (documentation, tested).
    """

    name: str
    constructor: str
    gradcam_layer: str
    feature_width: int
    stride: int
    head_layer: str
    stages: tuple[tuple[str, ...], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    torchvision_weights: str
    parameters_4: int


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            name="resnet18",
            constructor="resnet18",
            gradcam_layer="layer4",
            feature_width=512,
            stride=32,
            head_layer="fc",
            stages=(("layer4",), ("layer3",), ("layer2",), ("layer1",), ("conv1", "bn1")),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            torchvision_weights="ResNet18_Weights.IMAGENET1K_V1",
            parameters_4=11_178_564,
        ),
        Backbone(
            name="mobilenet_v2",
            constructor="mobilenet_v2",
            gradcam_layer="features",
            feature_width=1280,
            stride=32,
            head_layer="classifier.1",
            # by resolution and width: the last inverted residual and the 1x1 convolution to
            # 1280 channels, then the blocks of 160, 96, 64, 32, 24 channels, then the stem
            stages=(
                ("features.17", "features.18"),
                ("features.14", "features.15", "features.16"),
                ("features.11", "features.12", "features.13"),
                ("features.7", "features.8", "features.9", "features.10"),
                ("features.4", "features.5", "features.6"),
                ("features.2", "features.3"),
                ("features.0", "features.1"),
            ),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            torchvision_weights="MobileNet_V2_Weights.IMAGENET1K_V1",
            parameters_4=2_228_996,
        ),
    )
}

#: the attribute a network built here carries its backbone's name in
_TAG = "patchcxr_backbone"


def backbone(name: str) -> Backbone:
    """The :class:`Backbone` called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown classifier backbone {name!r}: one of {', '.join(BACKBONES)}") from None


def backbone_of(model: nn.Module) -> Backbone:
    """The backbone of a network built by :func:`network`."""
    name = getattr(model, _TAG, None)
    if name is None:
        raise ValueError(f"{type(model).__name__} was not built by patchcxr.models.classifier.network")
    return backbone(str(name))


def network(name: str, n_classes: int) -> nn.Module:
    """The architecture of backbone ``name`` with random weights and a linear head of
    ``n_classes`` outputs (for loading a model file, or as the start of a training)."""
    import torchvision.models  # torchvision import costs ~3 s: only here

    spec = backbone(name)
    model: nn.Module = getattr(torchvision.models, spec.constructor)(weights=None)
    old = model.get_submodule(spec.head_layer)
    if not isinstance(old, nn.Linear) or old.in_features != spec.feature_width:
        raise AssertionError(f"{name}: {spec.head_layer} is not a Linear({spec.feature_width}, …)")
    parent, _, leaf = spec.head_layer.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, nn.Linear(spec.feature_width, n_classes))
    setattr(model, _TAG, name)
    return model


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The trunk's last feature map (Grad-CAM's layer) of a batch (N, 3, H, W) →
    (N, feature_width, H/stride, W/stride)."""
    spec = backbone_of(model)
    if spec.name == "resnet18":
        m: Any = model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))
    return model.get_submodule(spec.gradcam_layer)(x)


def head(model: nn.Module, fmap: torch.Tensor) -> torch.Tensor:
    """Logits from a feature map (:func:`features`): global average pool, then the
    backbone's classifier (for MobileNetV2 a dropout, identity in eval mode, and the linear
    layer). ``head(model, features(model, x))`` equals ``model(x)``."""
    pooled = torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1)
    spec = backbone_of(model)
    if spec.name == "resnet18":
        return linear(model)(pooled)
    return model.get_submodule(spec.head_layer.rpartition(".")[0])(pooled)


def linear(model: nn.Module) -> nn.Linear:
    """The final linear layer (feature_width → classes)."""
    layer = model.get_submodule(backbone_of(model).head_layer)
    assert isinstance(layer, nn.Linear)
    return layer


def vote(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image decisions from K patch probabilities ``(K, C)``.

    * hard (the paper): majority of the patch arg-maxes; ties go to the class seen first
      among the patches (the official ``Counter.most_common``);
    * soft: arg-max of the mean probability.
    """
    labels = probs.argmax(dim=1)
    counts = torch.bincount(labels, minlength=probs.shape[1])
    best = counts.max()
    tied = torch.nonzero(counts == best).flatten()
    first_seen = min(tied.tolist(), key=lambda c: int(torch.nonzero(labels == c)[0]))
    mean = probs.mean(dim=0)
    return {"hard": torch.tensor(first_seen), "soft": mean.argmax(), "votes": counts, "mean_prob": mean}


def minmax_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map of a batch (K, H, W) scaled to [0, 1] by its own minimum and maximum; a
    constant map becomes 0 (the Grad-CAM normalisation, method.md §6.2)."""
    lo = maps.amin(dim=(1, 2), keepdim=True)
    hi = maps.amax(dim=(1, 2), keepdim=True)
    return torch.where(hi > lo, (maps - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(maps))
