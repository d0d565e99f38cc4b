"""Shared-trunk inference: each patch's logits and Grad-CAM read from one pass over the
whole image equal their definitions on the shared feature map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from patchcxr.classification.explain import shared_saliency
from patchcxr.classification.shared_trunk import (
    cells,
    feature_windows,
    shared_gradcams,
    shared_predict,
    window_logits,
)
from patchcxr.models.classifier import BACKBONES, features, head, linear, network


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return network("resnet18", 4).eval()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_the_trunk_is_the_network_without_its_head(name: str) -> None:
    torch.manual_seed(0)
    net = network(name, 3).eval()
    spec = BACKBONES[name]
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        fmap = features(net, x)
        assert fmap.shape == (2, spec.feature_width, 64 // spec.stride, 64 // spec.stride)
        # 2x2 map = one 64² patch: pooling the whole map and the head give the network's output
        torch.testing.assert_close(head(net, fmap), net(x))
        torch.testing.assert_close(linear(net)(fmap.mean((2, 3))), net(x))
        assert linear(net).out_features == 3


def test_windows_snap_to_the_feature_grid_and_stay_inside() -> None:
    wins = np.array([[0, 0, 224, 224], [47, 500, 271, 724], [900, 900, 1124, 1124]])
    corners = feature_windows(wins, (32, 32), 224, 32)
    assert corners.tolist() == [[0, 0], [1, 16], [25, 25]]  # 47/32 -> 1, 500/32 -> 16, clipped at 32 - 7
    assert cells(224, 32) == 7 and cells(112, 32) == 4 and cells(64, 32) == 2


def test_window_logits_and_gradcams_equal_their_definitions(model: torch.nn.Module) -> None:
    torch.manual_seed(1)
    fmap = torch.rand(1, 512, 8, 8)
    corners = np.array([[0, 0], [3, 5], [6, 6]])
    s, target = 2, 2
    logits = window_logits(model, fmap, corners, patch=64)
    cams = shared_gradcams(model, fmap, corners, 64, target=target)
    for k, (r, c) in enumerate(corners.tolist()):
        window = fmap[:, :, r : r + s, c : c + s].clone().requires_grad_(True)
        z = linear(model)(window.mean((2, 3)))
        torch.testing.assert_close(logits[k], z[0].detach())
        # Grad-CAM with autograd, exactly as patch_gradcams does on a crop's own map
        z[0, target].backward()
        alpha = window.grad.mean((2, 3), keepdim=True)
        cam = F.relu((alpha * window.detach()).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        torch.testing.assert_close(cams[k], cam, atol=1e-5, rtol=1e-5)
        model.zero_grad(set_to_none=True)


def test_window_logits_of_a_batch_of_maps_pick_each_windows_own_map(model: torch.nn.Module) -> None:
    torch.manual_seed(2)
    fmaps = torch.rand(3, 512, 8, 8)
    corners = np.array([[0, 0], [3, 5], [6, 6], [1, 2]])
    image_of = np.array([2, 0, 2, 1])
    batched = window_logits(model, fmaps, corners, 64, image_of=image_of)
    for k in range(len(corners)):
        alone = window_logits(model, fmaps[image_of[k] : image_of[k] + 1], corners[k : k + 1], 64)
        torch.testing.assert_close(batched[k], alone[0])
    assert not torch.allclose(batched[0], window_logits(model, fmaps, corners[:1], 64)[0])  # map 2, not map 0


def test_shared_saliency_covers_the_patches(model: torch.nn.Module) -> None:
    # its own input, whatever the tests before drew (with random weights the class map of
    # a window can be all negative, hence zero after the ReLU: this seed gives one that is not)
    torch.manual_seed(2)
    img = torch.rand(1, 256, 256)
    wins = np.array([[0, 0, 64, 64], [96, 128, 160, 192]])
    sal, probs = shared_saliency(model, img, wins, patch=64, target=1, device=torch.device("cpu"))
    assert sal.shape == (256, 256) and probs.shape == (2,)
    assert sal[:64, :64].max() > 0 and sal[200:, :100].max() == 0  # nothing where no patch lies
    p, _, _ = shared_predict(model, torch.rand(1, 3, 256, 256), wins, 64)
    torch.testing.assert_close(p.sum(1), torch.ones(2))


def test_with_a_patch_as_large_as_the_image_both_modes_give_the_same_probabilities(model: torch.nn.Module) -> None:
    # the one window covers the whole feature map and the exact crop is the whole image:
    # the shared trunk must reproduce the exact K-patch probabilities
    from patchcxr.classification.predict import predict_probs, shared_probs
    from patchcxr.classification.settings import ClassifierSettings

    settings = ClassifierSettings(patch=96)
    img = torch.rand(1, 96, 96)
    lung = np.zeros((96, 96), bool)
    lung[20:80, 10:90] = True
    dev = torch.device("cpu")
    exact, _ = predict_probs(model, img, lung, settings, k=3, rng=np.random.default_rng(0), device=dev)
    shared = shared_probs(model, img, lung, settings, k=3, rng=np.random.default_rng(0), device=dev)
    torch.testing.assert_close(shared, exact, rtol=1e-4, atol=1e-5)
