"""Probabilistic Grad-CAM (method.md §6.2).

For a masked 1024² image, target class ``c`` and K lung-centred patches ``x_k`` on windows
``Ω_k``: the patch probability ``r_k = softmax(f(x_k))_c``, the patch Grad-CAM at the
backbone's last feature map (ResNet-18: ``layer4``; MobileNetV2: the output of
``features``; :data:`patchcxr.models.classifier.BACKBONES`)

.. math::

    g_k = \\mathrm{norm}\\big(\\mathrm{up}(\\mathrm{ReLU}(\\textstyle\\sum_f \\alpha_f A_f))\\big),
    \\qquad \\alpha_f = \\mathrm{mean}_{ij} \\, \\partial y_c / \\partial A_{f,ij}

(bilinear upsampling to the patch size, min-max normalisation to [0, 1], then resizing to
the window's true size), and the global map

.. math::

    L^c(p) = \\frac{\\sum_k r_k\\, \\mathcal{U}_k(g_k)(p)}{\\sum_k \\mathbb{1}[p \\in \\Omega_k] + 10^{-7}}

with ``U_k`` placing ``g_k`` on the image canvas. :func:`patch_gradcams` computes all K
Grad-CAMs in **one** batched pass (the model in eval mode, so samples do not interact); at
the last feature map ``∂y_c/∂A`` depends only on the pooling head, so the trunk runs
without autograd and only the head is differentiated. :func:`patch_gradcams_reference` is
the plain per-patch loop with a full backward pass that it must equal.

These are primitives on patches, windows and maps: they know nothing of how a classifier
draws its patches (:mod:`patchcxr.classification.explain` puts them together).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from patchcxr.models.classifier import backbone_of, features, head, minmax_normalise
from patchcxr.models.state import autocast


def _layer_hook(model: nn.Module, layer: str) -> tuple[dict[str, torch.Tensor], torch.utils.hooks.RemovableHandle]:
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        out.retain_grad()
        store["act"] = out

    return store, dict(model.named_modules())[layer].register_forward_hook(hook)


def _grad(act: torch.Tensor) -> torch.Tensor:
    """The gradient kept on a layer's activation (the hook's ``retain_grad``)."""
    if act.grad is None:
        raise RuntimeError("no gradient reached the Grad-CAM layer: is it part of the model's forward pass?")
    return act.grad.detach()


#: how a patch's weighted activation sum becomes a map before upsampling: ``relu`` (Grad-CAM,
#: the method), ``abs`` (its absolute value: the pre-ReLU map's magnitude, never emptied,
#: the variant Adebayo et al. also rank)
RECTIFICATIONS = ("relu", "abs")


def _cams(act: torch.Tensor, grad: torch.Tensor, size: int, rectify: str = "relu") -> torch.Tensor:
    if rectify not in RECTIFICATIONS:
        raise ValueError(f"rectify {rectify!r}: one of {RECTIFICATIONS}")
    weights = grad.mean(dim=(2, 3), keepdim=True)
    raw = (weights * act).sum(dim=1, keepdim=True)
    cam = F.relu(raw) if rectify == "relu" else raw.abs()
    cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return minmax_normalise(cam)


def head_gradcam_maps(
    model: nn.Module,
    patches: torch.Tensor,
    target: int,
    *,
    precision: str = "fp32",
    rectify: Sequence[str] = ("relu",),
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Grad-CAM at the backbone's last feature map: ``∂y_c/∂A`` depends only on the head
    (average pool, linear layer), so the trunk runs without autograd (no graph, no
    parameter gradients) and only the head is differentiated — the cost of a forward pass.
    Under ``precision``'s autocast only the trunk runs in half precision: its activations
    are cast back to fp32 for the head and its gradient. One map set per ``rectify``
    (:data:`RECTIFICATIONS`) from the same pass, and the probabilities of ``target``."""
    if model.training:
        raise ValueError("Grad-CAM needs the model in eval mode (batch norm must not mix patches)")
    with torch.inference_mode(), autocast(patches.device, precision):
        act = features(model, patches)
    act = act.float()
    with torch.enable_grad():
        a = act.clone().requires_grad_(True)
        logits = head(model, a)
        (grad,) = torch.autograd.grad(logits[:, target].sum(), a)
    probs = torch.softmax(logits.detach(), dim=1)[:, target]
    return {r: _cams(a.detach(), grad, patches.shape[-1], r) for r in rectify}, probs


def _head_gradcams(
    model: nn.Module, patches: torch.Tensor, target: int, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    maps, probs = head_gradcam_maps(model, patches, target, precision=precision)
    return maps["relu"], probs


def patch_gradcams(
    model: nn.Module, patches: torch.Tensor, target: int, layer: str | None = None, *, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAMs ``(K, S, S)`` in [0, 1] and class probabilities ``(K,)`` of K patches,
    in one batched pass. ``layer`` None (or the backbone's Grad-CAM layer): a forward of
    the trunk and the head's gradient only; another layer: one forward and one backward.
    ``precision`` bf16/fp16 runs the network's forward under autocast; the maps and
    probabilities come back fp32."""
    if model.training:
        raise ValueError("Grad-CAM needs the model in eval mode (batch norm must not mix patches)")
    if layer is None or layer == backbone_of(model).gradcam_layer:
        return _head_gradcams(model, patches, target, precision)
    store, handle = _layer_hook(model, layer)
    try:
        with torch.enable_grad():
            with autocast(patches.device, precision):
                logits = model(patches).float()
            logits[:, target].sum().backward()  # sample k's score depends only on sample k
        act, grad = store["act"].detach().float(), _grad(store["act"]).float()
    finally:
        handle.remove()
    model.zero_grad(set_to_none=True)
    probs = torch.softmax(logits.detach(), dim=1)[:, target]
    return _cams(act, grad, patches.shape[-1]), probs


def patch_gradcams_reference(
    model: nn.Module, patches: torch.Tensor, target: int, layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same, one patch at a time with a full backward pass through the network and a
    hook on the layer (default: the backbone's Grad-CAM layer), as the official code
    does; for tests."""
    if model.training:
        raise ValueError("Grad-CAM needs the model in eval mode (batch norm must not mix patches)")
    layer = layer or backbone_of(model).gradcam_layer
    cams, probs = [], []
    for k in range(len(patches)):
        store, handle = _layer_hook(model, layer)
        try:
            with torch.enable_grad():
                logits = model(patches[k : k + 1])
                logits[0, target].backward()
            act, grad = store["act"].detach(), _grad(store["act"])
        finally:
            handle.remove()
        model.zero_grad(set_to_none=True)
        cams.append(_cams(act, grad, patches.shape[-1])[0])
        probs.append(torch.softmax(logits.detach(), dim=1)[0, target])
    return torch.stack(cams), torch.stack(probs)


def aggregate(cams: torch.Tensor, probs: torch.Tensor, wins: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The global map ``L^c`` on the image canvas from patch Grad-CAMs at their windows."""
    num = torch.zeros(tuple(shape[:2]), dtype=torch.float64)
    den = torch.zeros_like(num)
    for cam, p, (top, left, bottom, right) in zip(cams, probs, wins.tolist(), strict=True):
        size = (bottom - top, right - left)
        if tuple(cam.shape) != size:  # a clipped border window: resize to its true size
            cam = F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        num[top:bottom, left:right] += float(p) * cam.double()
        den[top:bottom, left:right] += 1.0
    return (num / (den + 1e-7)).numpy()


def coverage(wins: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """How many of the windows (``top, left, bottom, right``) cover each pixel of the canvas:
    :func:`aggregate`'s denominator."""
    den = np.zeros(tuple(shape[:2]), dtype=np.int32)
    for top, left, bottom, right in wins.tolist():
        den[top:bottom, left:right] += 1
    return den


def peak_region(lung: np.ndarray, covered: np.ndarray, floor: float) -> np.ndarray:
    """The pixels where a map's peak is looked for: lung pixels covered by at least
    ``floor`` times the median coverage of the covered lung pixels. A pixel at the lung's
    edge sits in few windows, so its average rests on few patches and peaks there by chance
    more often; ``floor`` 0 keeps the whole lung."""
    inside = lung & (covered > 0)
    if not inside.any():
        return lung.copy()
    return inside & (covered >= floor * float(np.median(covered[inside])))


def in_boxes(shape: Sequence[int], boxes: np.ndarray) -> np.ndarray:
    """The pixels inside any of the boxes (``top, left, bottom, right``, end-exclusive)."""
    out = np.zeros(tuple(shape[:2]), dtype=bool)
    for t, left, b, r in boxes.tolist():
        out[t:b, left:r] = True
    return out


def peak(saliency: np.ndarray, region: np.ndarray) -> tuple[int, int]:
    """The map's maximum within ``region`` (row, column)."""
    inside = np.where(region, saliency, -np.inf)
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    return int(y), int(x)


def pointing_hit(saliency: np.ndarray, boxes: np.ndarray) -> bool:
    """The pointing game: does the map's maximum fall inside one of the boxes
    (``top, left, bottom, right``, end-exclusive)?"""
    y, x = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    return bool(any(t <= y < b and left <= x < r for t, left, b, r in boxes.tolist()))


def pointing_chance(region: np.ndarray, boxes: np.ndarray) -> float:
    """The pointing game's hit probability of a peak drawn uniformly from ``region`` (the
    pixels the peak is looked for in): the share of them inside a box (NaN for an empty
    region)."""
    n = int(region.sum())
    return float((region & in_boxes(region.shape, boxes)).sum()) / n if n else float("nan")
