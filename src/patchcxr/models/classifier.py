"""The paper's classifier: torchvision ResNet-18 with its last layer sized to the classes
(method.md §5.1; 11.18 M parameters for 4 classes).

ImageNet weights come from a local file checked by sha256 (users on clusters without
internet copy it once), else from torchvision's download when online; offline without a
file the network starts from scratch and says so in the log — it never fails silently
into a different experiment.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from patchcxr.io import sha256_file
from patchcxr.models.state import load_state

if TYPE_CHECKING:
    from torchvision.models import ResNet  # the classifier's type (torchvision is untyped here)
else:
    ResNet = Any

log = logging.getLogger(__name__)

#: torchvision names its weight files ``<arch>-<first 8 hex digits of the sha256>.pth``
#: (ImageNet ResNet-18: ``resnet18-f37072fd.pth``)
HASH_PREFIX = re.compile(r"-([0-9a-f]{8,})\.pth$")


def resnet18_network(n_classes: int) -> nn.Module:
    """The architecture alone (random weights, nothing logged): for loading a model file."""
    from torchvision.models import resnet18  # torchvision import costs ~3 s: only here

    model = resnet18(weights=None)
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    return model


def resnet18_classifier(
    n_classes: int, weights: str | Path | None = None, sha256: str | None = None, download: bool = False
) -> nn.Module:
    """ResNet-18 with a ``Linear(512, n_classes)`` head, initialised for training
    (:func:`initialise_resnet18` without the record of what was used)."""
    return initialise_resnet18(n_classes, weights, sha256, download)[0]


def initialise_resnet18(
    n_classes: int, weights: str | Path | None = None, sha256: str | None = None, download: bool = False
) -> tuple[nn.Module, str]:
    """ResNet-18 with a ``Linear(512, n_classes)`` head, initialised for training, and what
    it was initialised from: ``imagenet:<file> (sha256 …)``, ``imagenet:torchvision`` or
    ``scratch`` (also after a failed download: what actually ran, for the metadata).

    Args:
        n_classes: 4 (paper: viral and COVID-19 merged) or 5.
        weights: a local ImageNet state dict (``.pth``), loaded with ``weights_only=True``.
        sha256: the expected digest of ``weights`` (default: the prefix in torchvision's file
            name); a mismatch is an error.
        download: without a local file, try torchvision's ImageNet download.
    """
    from torchvision.models import ResNet18_Weights, resnet18  # torchvision import costs ~3 s: only here

    model = resnet18(weights=None)
    if weights is not None:
        path = Path(weights)
        digest = sha256_file(path)
        m = HASH_PREFIX.search(path.name)
        expected = sha256 or (m.group(1) if m else None)
        if expected is None:
            raise ValueError(f"{path}: give its sha256 (or keep torchvision's file name, which holds a hash prefix)")
        if not digest.startswith(expected):
            raise ValueError(f"{path}: sha256 {digest} does not match the expected {expected}")
        model.load_state_dict(load_state(path))
        log.info("ResNet-18 initialised from %s", path)
        source = f"imagenet:{path.name} (sha256 {digest[:16]})"
    elif download:
        try:
            model = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
            log.info("ResNet-18 initialised from torchvision's ImageNet weights")
            source = "imagenet:torchvision"
        except Exception as err:  # no network: URLError, OSError, …
            log.warning("ImageNet weights unavailable (%s: %s): training from scratch", type(err).__name__, err)
            source = "scratch"
    else:
        log.warning(
            "no ImageNet weights configured: ResNet-18 trains from scratch (the paper fine-tuned ImageNet weights)"
        )
        source = "scratch"
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    return model, source


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


#: ResNet-18's total stride at ``layer4``
STRIDE = 32


def trunk(model: ResNet, x: torch.Tensor) -> torch.Tensor:
    """ResNet-18 ``layer4`` features of a batch (N, 3, H, W) → (N, 512, H/32, W/32)."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def minmax_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map of a batch (K, H, W) scaled to [0, 1] by its own minimum and maximum; a
    constant map becomes 0 (the Grad-CAM normalisation, method.md §6.2)."""
    lo = maps.amin(dim=(1, 2), keepdim=True)
    hi = maps.amax(dim=(1, 2), keepdim=True)
    return torch.where(hi > lo, (maps - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(maps))
