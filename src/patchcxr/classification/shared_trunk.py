"""Shared-trunk K-patch inference and saliency (an approximation of method.md §5.5 and §6.2,
optional: ``classification.inference.mode: shared_trunk``).

The exact method runs the network on each of K crops. Its trunk (every backbone of
:data:`patchcxr.models.classifier.BACKBONES`: ResNet-18 up to ``layer4``, MobileNetV2's
``features``) is fully convolutional with stride 32, and its head is a global average pool
and a linear layer, so a patch's logits can instead be read from *one* pass over the whole
masked image:

.. math::

    z_k = W \\, \\frac{1}{s^2} \\sum_{(i,j) \\in \\omega_k} A_{:,ij} + b,
    \\qquad s = \\text{patch} / 32,

with ``A`` the trunk's last feature map of the whole image and ``ω_k`` the ``s × s`` window of feature
cells under patch ``k`` (its corner rounded to the 32-pixel grid). The Grad-CAM of patch
``k`` for class ``c`` needs no backward pass either: ``∂z_{k,c} / ∂A_{f,ij} = W_{c,f} / s²``
inside the window, so ``α_f = W_{c,f} / s²`` and

.. math::

    g_k = \\mathrm{norm}\\big(\\mathrm{up}(\\mathrm{ReLU}(\\textstyle\\sum_f W_{c,f} A_f)|_{\\omega_k})\\big)

(the constant ``1/s²`` vanishes in the min-max normalisation). The result differs from the
exact method where a crop's own borders matter: zero padding at the crop edge versus the
real neighbourhood in the whole image, and windows snapped to the 32-pixel grid; the
benchmark (bench/bench_shared_trunk.py) measures the agreement.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from patchcxr.classification.data import memory_format
from patchcxr.models.classifier import backbone_of, features, linear, minmax_normalise


def cells(patch: int, stride: int) -> int:
    """Feature cells per window side: ``patch / stride`` rounded (7 for the paper's 224 at
    stride 32)."""
    return max(1, round(patch / stride))


def feature_windows(wins: np.ndarray, fmap_shape: tuple[int, int], patch: int, stride: int) -> np.ndarray:
    """Feature-cell corners ``(row, col)`` of image windows ``(top, left, …)``: the corner
    rounded to the stride grid and kept inside the map."""
    s = cells(patch, stride)
    rows = np.clip(np.rint(wins[:, 0] / stride).astype(int), 0, fmap_shape[0] - s)
    cols = np.clip(np.rint(wins[:, 1] / stride).astype(int), 0, fmap_shape[1] - s)
    return np.stack([rows, cols], axis=1)


def window_logits(
    model: nn.Module, fmap: torch.Tensor, corners: np.ndarray, patch: int, *, image_of: np.ndarray | None = None
) -> torch.Tensor:
    """Logits (K, C) of the patches whose feature windows start at ``corners``: average over
    every ``s × s`` window of the maps (N, F, h, w) at once, then the final linear layer (a
    classifier's dropout is the identity in eval mode). ``image_of`` gives each window's
    image in the batch (default: all on the first map)."""
    s = cells(patch, backbone_of(model).stride)
    pooled = F.avg_pool2d(fmap, kernel_size=s, stride=1)  # (N, F, h - s + 1, w - s + 1)
    images = torch.as_tensor(image_of if image_of is not None else np.zeros(len(corners), dtype=np.int64))
    picked = pooled[images, :, torch.as_tensor(corners[:, 0]), torch.as_tensor(corners[:, 1])]
    return linear(model)(picked)  # (K, C)


def class_activation(model: nn.Module, fmap: torch.Tensor, target: int) -> torch.Tensor:
    """``ReLU(Σ_f W_{c,f} A_f)`` over the whole map (h, w): every patch's Grad-CAM is a window
    of it."""
    return F.relu(torch.einsum("f,fhw->hw", linear(model).weight[target], fmap[0]))


def shared_predict(
    model: nn.Module, img3: torch.Tensor, wins: np.ndarray, patch: int
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Probabilities (K, C) of the patches at ``wins`` from one trunk pass over the whole
    normalised image (1, 3, H, W); also the feature map and the windows' corners."""
    with torch.inference_mode():
        fmap = features(model, img3.contiguous(memory_format=memory_format(model)))
        corners = feature_windows(wins, (int(fmap.shape[-2]), int(fmap.shape[-1])), patch, backbone_of(model).stride)
        probs = torch.softmax(window_logits(model, fmap, corners, patch), dim=1)
    return probs, fmap, corners


def shared_gradcams(
    model: nn.Module, fmap: torch.Tensor, corners: np.ndarray, patch: int, *, target: int
) -> torch.Tensor:
    """Grad-CAMs (K, patch, patch) in [0, 1] of the patches, as the exact method's
    :func:`patchcxr.saliency.patch_gradcams` returns them, from the shared map."""
    s = cells(patch, backbone_of(model).stride)
    with torch.inference_mode():
        cam = class_activation(model, fmap, target)
        rows = torch.as_tensor(corners[:, 0])[:, None] + torch.arange(s)[None]
        cols = torch.as_tensor(corners[:, 1])[:, None] + torch.arange(s)[None]
        crops = cam[rows[:, :, None], cols[:, None, :]]  # (K, s, s)
        up = F.interpolate(crops[:, None], size=(patch, patch), mode="bilinear", align_corners=False)[:, 0]
        return minmax_normalise(up)


def snapped_windows(corners: np.ndarray, patch: int, shape: tuple[int, int], stride: int) -> np.ndarray:
    """The image windows the feature windows cover (corners × stride, ``patch`` wide, kept
    inside the image)."""
    top = np.clip(corners[:, 0] * stride, 0, shape[0] - patch)
    left = np.clip(corners[:, 1] * stride, 0, shape[1] - patch)
    return np.stack([top, left, top + patch, left + patch], axis=1)
