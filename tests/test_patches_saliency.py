"""Patch sampling (method.md §5.3) and probabilistic Grad-CAM (§6.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patchcxr.classification.patches import extract, sample_centres, windows
from patchcxr.models.classifier import BACKBONES, network
from patchcxr.saliency import aggregate, patch_gradcams, patch_gradcams_reference


def ring_lung(size: int = 200, grow: int = 0) -> np.ndarray:
    """An annulus: its bounding band contains many non-lung pixels (the centre hole)."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2) * 200 / size
    return (r > 40 - grow) & (r < 80 + grow)


def test_joint_centres_always_lie_in_the_lung() -> None:
    lung = ring_lung()
    c = sample_centres(lung, 2000, np.random.default_rng(0), "joint")
    assert lung[c[:, 0], c[:, 1]].all()


def test_independent_centres_reproduce_the_official_quirk() -> None:
    lung = ring_lung()
    c = sample_centres(lung, 2000, np.random.default_rng(0), "independent")
    inside = lung[c[:, 0], c[:, 1]].mean()
    assert 0.3 < inside < 0.95  # many centres fall off the lung, inside its bounding band
    rows, _ = np.nonzero(lung)
    assert rows.min() <= c[:, 0].min() and c[:, 0].max() <= rows.max()


def test_sampling_is_seeded_and_rejects_empty_masks() -> None:
    lung = ring_lung()
    a = sample_centres(lung, 10, np.random.default_rng(5))
    b = sample_centres(lung, 10, np.random.default_rng(5))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="empty lung mask"):
        sample_centres(np.zeros((10, 10), bool), 3, np.random.default_rng(0))


@pytest.mark.parametrize("centre", [(0, 0), (5, 199), (199, 100), (100, 100)])
def test_border_handling(centre: tuple[int, int]) -> None:
    c = np.array([centre])
    shifted = windows(c, (200, 200), 64, "shift")[0]
    assert shifted[2] - shifted[0] == 64 and shifted[3] - shifted[1] == 64
    assert shifted.min() >= 0 and shifted[2] <= 200 and shifted[3] <= 200
    clipped = windows(c, (200, 200), 64, "clip")[0]
    assert clipped.min() >= 0 and clipped[2] <= 200 and clipped[3] <= 200
    assert clipped[0] <= centre[0] < clipped[2] and clipped[1] <= centre[1] < clipped[3]
    img = torch.arange(200 * 200, dtype=torch.float32).reshape(1, 200, 200)
    batch = extract(img, np.stack([shifted, clipped]), 64)
    assert batch.shape == (2, 1, 64, 64)
    t, l_, b, r = shifted
    assert torch.equal(batch[0, 0], img[0, t:b, l_:r])  # a shifted window is an exact crop


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return network("resnet18", 4).eval()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_batched_gradcam_equals_the_per_patch_reference(name: str) -> None:
    # the head-only gradient at the backbone's Grad-CAM layer against a full backward pass
    # with a hook on that layer, patch by patch
    torch.manual_seed(0)
    model = network(name, 4).eval()
    patches = torch.randn(6, 3, 64, 64)
    cams, probs = patch_gradcams(model, patches, target=3)
    ref_cams, ref_probs = patch_gradcams_reference(model, patches, target=3)
    assert cams.shape == (6, 64, 64)
    torch.testing.assert_close(probs, ref_probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cams, ref_cams, rtol=1e-4, atol=1e-5)
    assert float(cams.min()) >= 0 and float(cams.max()) <= 1


def test_gradcam_at_another_layer_takes_the_backward_path(model: torch.nn.Module) -> None:
    patches = torch.randn(3, 3, 64, 64)
    cams, probs = patch_gradcams(model, patches, target=1, layer="layer3")
    ref_cams, ref_probs = patch_gradcams_reference(model, patches, target=1, layer="layer3")
    torch.testing.assert_close(cams, ref_cams, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(probs, ref_probs, rtol=1e-5, atol=1e-6)


def test_gradcam_refuses_train_mode() -> None:
    m = network("resnet18", 2)
    with pytest.raises(ValueError, match="eval mode"):
        patch_gradcams(m.train(), torch.randn(2, 3, 32, 32), 0)


def test_aggregate_is_the_probability_weighted_mean_over_coverage() -> None:
    cams = torch.stack([torch.full((4, 4), 1.0), torch.full((4, 4), 0.5)])
    probs = torch.tensor([0.8, 0.4])
    wins = np.array([[0, 0, 4, 4], [2, 2, 6, 6]])
    out = aggregate(cams, probs, wins, (8, 8))
    assert out[0, 0] == pytest.approx(0.8, abs=1e-6)  # one patch: r·g
    assert out[3, 3] == pytest.approx((0.8 * 1.0 + 0.4 * 0.5) / 2, abs=1e-6)  # two patches overlap
    assert out[5, 5] == pytest.approx(0.2, abs=1e-6)
    assert out[7, 7] == 0.0  # no coverage
    # a clipped (smaller) window gets its Grad-CAM resized to its true size
    small = aggregate(cams[:1], probs[:1], np.array([[0, 0, 2, 3]]), (4, 4))
    assert small[:2, :3] == pytest.approx(np.full((2, 3), 0.8), abs=1e-6)


def test_vote_hard_majority_with_first_seen_ties_and_soft_mean() -> None:
    from patchcxr.models.classifier import vote

    probs = torch.tensor([[0.1, 0.6, 0.3], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    v = vote(probs)  # arg-maxes 1, 2, 0, 2, 1: a 2-2 tie between classes 1 and 2; 1 was seen first
    assert int(v["hard"]) == 1 and v["votes"].tolist() == [1, 2, 2]
    assert int(v["soft"]) == int(probs.mean(0).argmax())


def test_pointing_game() -> None:
    from patchcxr.saliency import pointing_hit

    sal = np.zeros((50, 50))
    sal[30, 12] = 1.0
    assert pointing_hit(sal, np.array([[25, 10, 35, 20]]))
    assert not pointing_hit(sal, np.array([[0, 0, 10, 10], [31, 12, 40, 20]]))


def test_image_saliency_covers_the_lung_and_is_probability_weighted(model: torch.nn.Module) -> None:
    from patchcxr.classification.explain import image_saliency
    from patchcxr.classification.settings import ClassifierSettings

    lung = ring_lung(128)
    img = torch.rand(1, 128, 128) * torch.from_numpy(lung)
    s = ClassifierSettings(patch=32)
    sal, probs = image_saliency(
        model, img, lung, s, k=12, target=3, rng=np.random.default_rng(0), device=torch.device("cpu"), batch=5
    )
    assert sal.shape == (128, 128) and probs.shape == (12,)
    assert sal.min() >= 0 and sal.max() <= float(probs.max()) + 1e-6  # a coverage-mean of r_k g_k, g_k <= 1
    assert sal[~ring_lung(128, grow=30)].max() == 0  # nothing far from any patch


def test_lesion_boxes_follow_the_crop_and_resize(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from patchcxr.classification.explain import lesion_boxes_on_input
    from patchcxr.preprocess import PreprocessSettings

    (tmp_path / "cohen").mkdir()
    (tmp_path / "cohen" / "lesions.tsv").write_text(
        "source\timage_id\tkind\tside\tx0\ty0\tx1\ty1\ncohen\tfilm\tnodule\tleft\t100\t50\t150\t90\n"
    )
    pixels = np.full((200, 400), 100, np.uint8)
    pixels[160:] = 0  # a blank band: the input covers rows 0-159
    boxes = lesion_boxes_on_input(
        tmp_path, "cohen/film", pixels, fmt="cohen", size=80, preprocessing=PreprocessSettings(crop_band=True)
    )
    assert boxes.tolist() == [[25, 20, 45, 30]]  # y * 80/160, x * 80/400
    crop = PreprocessSettings(crop_band=True)
    assert lesion_boxes_on_input(tmp_path, "cohen/other", pixels, fmt="cohen", size=80, preprocessing=crop).shape == (
        0,
        4,
    )


def test_image_saliency_is_the_probability_weighted_coverage_mean_of_patch_gradcams(model: torch.nn.Module) -> None:
    # the definition (method.md §6.2), built from the per-patch reference with a full backward
    # pass: the same windows, each patch's Grad-CAM and probability, placed and averaged over
    # coverage. 64² patches give 2x2 layer4 maps (a 32² patch's 1x1 map normalises to noise).
    from patchcxr.classification.data import to_network
    from patchcxr.classification.explain import image_saliency
    from patchcxr.classification.predict import patch_windows
    from patchcxr.classification.settings import ClassifierSettings

    lung = ring_lung(160)
    img = torch.rand(1, 160, 160, generator=torch.Generator().manual_seed(3)) * torch.from_numpy(lung)
    s = ClassifierSettings(patch=64)
    dev = torch.device("cpu")
    sal, probs = image_saliency(model, img, lung, s, k=10, target=2, rng=np.random.default_rng(4), device=dev, batch=4)
    wins = patch_windows(lung, (160, 160), s, 10, rng=np.random.default_rng(4))
    cams, ref_probs = patch_gradcams_reference(model, to_network(extract(img, wins, 64), "resnet18"), 2)
    torch.testing.assert_close(probs, ref_probs, rtol=1e-4, atol=1e-6)
    expected = aggregate(cams, ref_probs, wins, (160, 160))
    assert expected.max() > 0.1 * float(ref_probs.max())  # a map with structure, not zeros
    np.testing.assert_allclose(sal, expected, rtol=1e-3, atol=1e-5)


def test_lung_mass_is_the_share_of_the_map_inside_the_lung() -> None:
    from patchcxr.classification.explain import lung_mass

    lung = np.zeros((4, 4), bool)
    lung[:, :2] = True
    sal = np.zeros((4, 4))
    sal[0, 0], sal[0, 3] = 3.0, 1.0  # 3 of 4 units of mass in the lung
    assert lung_mass(sal, lung) == pytest.approx(0.75)
    assert np.isnan(lung_mass(np.zeros((4, 4)), lung))


def test_randomised_copies_reinitialise_only_the_named_layers(model: torch.nn.Module) -> None:
    from patchcxr.classification.explain import randomised_copy

    copy = randomised_copy(model, ("fc", "layer4"), seed=5)
    before, after = model.state_dict(), copy.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("fc.", "layer4.")) for k in changed)
    assert "fc.weight" in changed and "layer4.1.conv2.weight" in changed
    assert not any(torch.equal(before[k], after[k]) for k in before if k.endswith("conv1.weight") and "layer4" in k)
    again = randomised_copy(model, ("fc", "layer4"), seed=5).state_dict()
    assert all(torch.equal(after[k], again[k]) for k in after)  # seeded
    assert all(torch.equal(before[k], v) for k, v in randomised_copy(model, (), seed=5).state_dict().items())


def test_grad_cam_decorrelates_when_the_network_is_randomised(model: torch.nn.Module) -> None:
    from patchcxr.classification.explain import image_saliency, randomised_copy, rank_correlation
    from patchcxr.classification.settings import ClassifierSettings

    lung = ring_lung(128)
    img = torch.rand(1, 128, 128) * torch.from_numpy(lung)

    def saliency(net: torch.nn.Module) -> np.ndarray:
        rng = np.random.default_rng(0)
        s = ClassifierSettings(patch=32)
        return image_saliency(net, img, lung, s, k=12, target=3, rng=rng, device=torch.device("cpu"), batch=6)[0]

    reference = saliency(model)
    # the negative control: the same weights and patches give the same map
    assert rank_correlation(reference, saliency(randomised_copy(model, (), seed=1)), lung) == pytest.approx(1.0)
    for layers in (("fc",), ("fc", "layer4")):
        r = rank_correlation(reference, saliency(randomised_copy(model, layers, seed=1)), lung)
        assert r < 0.9, (layers, r)
    assert rank_correlation(reference, -reference, lung) == pytest.approx(-1.0)
    # a randomised map the ReLU emptied shares no ranking; a constant reference has none
    assert rank_correlation(reference, np.zeros_like(reference), lung) == 0.0
    assert np.isnan(rank_correlation(np.ones_like(reference), reference, lung))


def test_the_saliency_checks_resample_patients() -> None:
    import pandas as pd

    from patchcxr.classification.explain import saliency_sanity

    randomisation = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "a", "b", "c"],
            "randomised": ["fc"] * 3 + ["fc+layer4"] * 3,
            "spearman": [0.2, 0.4, 0.6, 0.0, 0.1, 0.2],
            "empty": [0, 0, 0, 1, 0, 0],
        }
    )
    saliency = pd.DataFrame({"image_id": ["a", "b", "c"], "pointing_hit": ["1", "0", ""], "lung_mass": [0.5, 0.7, 0.6]})
    t = saliency_sanity(randomisation, saliency, {"a": "p1", "b": "p1", "c": "p2"}, n_boot=200, seed=0).set_index(
        "check"
    )
    assert (
        t.loc["spearman, randomised fc", "value"] == pytest.approx(0.4)
        and t.loc["spearman, randomised fc", "n_patients"] == 2
    )
    assert t.loc["spearman, randomised fc+layer4", "value"] == pytest.approx(0.1)
    assert t.loc["empty maps, randomised fc+layer4", "value"] == pytest.approx(1 / 3)
    assert t.loc["pointing game hit rate", "n"] == 2 and t.loc["pointing game hit rate", "value"] == 0.5
    assert t.loc["lung mass", "value"] == pytest.approx(0.6)
    # two patients: every resample holds p1's pair (mean 0.3) or p2's film (0.6) or both
    assert (
        0.3 - 1e-9
        <= t.loc["spearman, randomised fc", "ci_low"]
        <= t.loc["spearman, randomised fc", "ci_high"]
        <= 0.6 + 1e-9
    )


def test_the_saliency_checks_of_no_film_are_nan_not_an_error() -> None:
    import pandas as pd

    from patchcxr.classification.explain import RANDOMISATION_COLUMNS, SALIENCY_COLUMNS, saliency_sanity

    # no test film of the target class, or none with lesion boxes (real data): counts 0, NaN
    empty = saliency_sanity(
        pd.DataFrame(columns=RANDOMISATION_COLUMNS), pd.DataFrame(columns=SALIENCY_COLUMNS), {}, n_boot=20, seed=0
    )
    assert list(empty["check"]) == ["pointing game hit rate", "lung mass"] and (empty["n"] == 0).all()
    assert empty["value"].isna().all() and empty["ci_low"].isna().all()
    films = pd.DataFrame({"image_id": ["a"], "pointing_hit": [""], "lung_mass": [0.4]})
    t = saliency_sanity(pd.DataFrame(columns=RANDOMISATION_COLUMNS), films, {"a": "p"}, n_boot=20, seed=0)
    assert t.set_index("check").loc["pointing game hit rate", "n"] == 0
    assert t.set_index("check").loc["lung mass", "value"] == pytest.approx(0.4)
