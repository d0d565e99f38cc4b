"""Patch sampling (method.md §5.3) and probabilistic Grad-CAM (§6.2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    from patchcxr.classification.sanity import randomised_copy

    copy = randomised_copy(model, ("fc", "layer4"), seed=5)
    before, after = model.state_dict(), copy.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("fc.", "layer4.")) for k in changed)
    assert "fc.weight" in changed and "layer4.1.conv2.weight" in changed
    assert not any(torch.equal(before[k], after[k]) for k in before if k.endswith("conv1.weight") and "layer4" in k)
    again = randomised_copy(model, ("fc", "layer4"), seed=5).state_dict()
    assert all(torch.equal(after[k], again[k]) for k in after)  # seeded
    assert all(torch.equal(before[k], v) for k, v in randomised_copy(model, (), seed=5).state_dict().items())


@pytest.mark.parametrize("name", list(BACKBONES))
def test_the_cascade_reaches_the_first_layer_and_the_independent_steps_one_stage_each(name: str) -> None:
    from patchcxr.classification.sanity import randomisation_steps, randomised_copy

    net = network(name, 3).eval()
    with torch.no_grad():  # as if trained: no weight (batch-norm scales included) at its initial value
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    spec = BACKBONES[name]
    steps = randomisation_steps(net)
    cascade = [s for s in steps if s.variant == "cascade"]
    independent = [s for s in steps if s.variant == "independent"]
    assert [s.depth for s in cascade] == list(range(1, len(spec.stages) + 2))
    assert cascade[0].layers == (spec.head_layer,) and len(independent) == len(spec.stages)
    before = net.state_dict()
    # the deepest step re-initialises every weight of the network
    deepest = randomised_copy(net, cascade[-1].layers, seed=3).state_dict()
    weights = [k for k in before if k.endswith("weight")]
    assert all(not torch.equal(before[k], deepest[k]) for k in weights)
    # the first stage alone: the stem changes, the head and the last stage do not
    first = randomised_copy(net, independent[-1].layers, seed=3).state_dict()
    changed = {k for k in before if not torch.equal(before[k], first[k])}
    assert changed and all(k.startswith(tuple(m + "." for m in spec.stages[-1])) for k in changed)


def test_grad_cam_decorrelates_down_the_cascade_and_an_emptied_map_is_not_a_correlation(
    model: torch.nn.Module,
) -> None:
    from patchcxr.classification.explain import image_saliency_maps
    from patchcxr.classification.sanity import randomisation_steps, randomised_copy, rank_correlation
    from patchcxr.classification.settings import ClassifierSettings

    lung = ring_lung(128)
    img = torch.rand(1, 128, 128) * torch.from_numpy(lung)

    def saliency(net: torch.nn.Module) -> dict[str, np.ndarray]:
        s = ClassifierSettings(patch=32)
        return image_saliency_maps(
            net,
            img,
            lung,
            s,
            k=12,
            target=3,
            rng=np.random.default_rng(0),
            device=torch.device("cpu"),
            batch=6,
            rectify=("relu", "abs"),
        )[0]

    reference = saliency(model)
    # the negative control: the same weights and patches give the same map
    same = saliency(randomised_copy(model, (), seed=1))["relu"]
    assert rank_correlation(reference["relu"], same, lung) == pytest.approx(1.0)
    for step in randomisation_steps(model):
        maps = saliency(randomised_copy(model, step.layers, seed=1))
        for kind in ("relu", "abs"):
            r = rank_correlation(reference[kind], maps[kind], lung)
            assert np.isnan(r) or r < 0.9, (step, kind, r)
    assert rank_correlation(reference["relu"], -reference["relu"], lung) == pytest.approx(-1.0)
    # a head whose target weights are all negative: Grad-CAM's ReLU empties every patch map
    # (its Spearman NaN, counted apart), the absolute pre-ReLU map keeps its ranking
    against = randomised_copy(model, (), seed=1)
    with torch.no_grad():
        against.fc.weight[3] = -against.fc.weight[3].abs() - 1e-3
    emptied = saliency(against)
    assert np.ptp(emptied["relu"][lung]) == 0 and np.isnan(rank_correlation(reference["relu"], emptied["relu"], lung))
    assert np.ptp(emptied["abs"][lung]) > 0 and np.isfinite(rank_correlation(reference["abs"], emptied["abs"], lung))


def test_the_peak_region_drops_thinly_covered_edge_pixels_and_chance_is_the_box_share() -> None:
    from patchcxr.saliency import coverage, peak, peak_region, pointing_chance

    lung = np.zeros((20, 20), bool)
    lung[2:18, 2:18] = True
    wins = np.array([[2, 2, 12, 12]] + [[6, 6, 16, 16]] * 5)  # one window reaches the corner
    covered = coverage(wins, lung.shape)
    assert covered[9, 9] == 6 and covered[2, 2] == 1 and covered[0, 0] == 0
    region = peak_region(lung, covered, 0.5)
    assert not region[2, 2] and region[9, 9] and not region[0, 0]
    assert (covered[region] >= 0.5 * np.median(covered[lung & (covered > 0)])).all()
    assert peak_region(lung, covered, 0.0).sum() == (lung & (covered > 0)).sum()
    sal = np.zeros((20, 20))
    sal[2, 2], sal[9, 9] = 5.0, 1.0
    assert peak(sal, region) == (9, 9) and peak(sal, lung) == (2, 2)
    # a box over a quarter of the region: a uniform peak hits it a quarter of the time
    square = np.zeros((20, 20), bool)
    square[4:12, 4:12] = True
    assert pointing_chance(square, np.array([[4, 4, 8, 8]])) == pytest.approx(0.25)
    assert np.isnan(pointing_chance(np.zeros((20, 20), bool), np.array([[4, 4, 8, 8]])))


def test_without_a_coverage_floor_a_signal_free_map_peaks_on_thinly_covered_pixels() -> None:
    """The issue's simulation: patch maps of pure noise, lung-centred windows; the arg-max
    lands on pixels fewer windows cover than the lung's median unless the floor is set."""
    from patchcxr.classification.patches import sample_centres, windows
    from patchcxr.saliency import aggregate, coverage, peak, peak_region

    lung = ring_lung(128)
    rng = np.random.default_rng(0)
    without, with_floor, median = [], [], []
    for _ in range(40):
        wins = windows(sample_centres(lung, 40, rng), lung.shape, 32, "clip")
        cams = torch.rand(len(wins), 32, 32)
        sal = aggregate(cams, torch.ones(len(wins)), wins, lung.shape)
        covered = coverage(wins, lung.shape)
        median.append(np.median(covered[lung & (covered > 0)]))
        without.append(covered[peak(sal, lung & (covered > 0))])
        with_floor.append(covered[peak(sal, peak_region(lung, covered, 0.5))])
    assert np.median(without) < np.median(median) / 2
    assert all(w >= 0.5 * m for w, m in zip(with_floor, median, strict=True))


def test_permuted_labels_keep_each_part_s_class_counts_and_leave_the_test_films() -> None:
    import pandas as pd

    from patchcxr.classification.sanity import permuted_labels

    ids = [f"f{i}" for i in range(40)]
    films = pd.DataFrame({"image_id": ids, "label4": ["a"] * 20 + ["b"] * 20})
    part = ["train"] * 30 + ["val"] * 5 + ["test"] * 5
    split = pd.DataFrame({"image_id": ids[::-1], "split": part[::-1]})
    out = permuted_labels(films, split, "label4", seed=1)
    by = dict(zip(split["image_id"], split["split"], strict=True))
    for which in ("train", "val", "test"):
        keep = films["image_id"].map(by) == which
        assert sorted(out.loc[keep, "label4"]) == sorted(films.loc[keep, "label4"])
    test = films["image_id"].map(by) == "test"
    assert out.loc[test, "label4"].tolist() == films.loc[test, "label4"].tolist()
    assert (out["label4"] != films["label4"]).sum() >= 5  # labels moved
    assert out.equals(permuted_labels(films, split, "label4", seed=1))


def _randomisation_rows() -> pd.DataFrame:
    import pandas as pd

    rows = []
    for variant, block, depth, rho, empty in (
        ("cascade", "fc", 1, [0.2, 0.4, 0.6], [0, 0, 0]),
        ("cascade", "layer4", 2, [np.nan, 0.1, 0.3], [1, 0, 0]),
    ):
        for i, image in enumerate("abc"):
            rows.append(
                {
                    "image_id": image,
                    "patient_id": "",
                    "variant": variant,
                    "block": block,
                    "depth": depth,
                    "map": "relu",
                    "spearman": rho[i],
                    "empty": empty[i],
                    "peak_row": 1 if image != "b" else 9,
                    "peak_col": 1,
                }
            )
    return pd.DataFrame(rows)


def test_the_saliency_checks_resample_patients_and_keep_emptied_maps_apart() -> None:
    import pandas as pd

    from patchcxr.classification.sanity import saliency_sanity

    saliency = pd.DataFrame(
        {
            "image_id": ["a", "b", "c"],
            "peak_row": [5, 1, 9],
            "peak_col": [5, 1, 9],
            "lesion_boxes": ["4,4,8,8", "0,0,3,3", ""],
            "pointing_hit": ["1", "1", ""],
            "pointing_chance": [0.25, 0.5, np.nan],
            "lung_mass": [0.5, 0.7, 0.6],
            "lung_mass_even": [0.4, 0.4, 0.4],
        }
    )
    patients = {"a": "p1", "b": "p1", "c": "p2"}
    t = saliency_sanity(_randomisation_rows(), saliency, patients, n_boot=200, seed=0, min_patients=1)
    t = t.set_index(["check", "block"])
    fc, l4 = t.loc[("spearman, cascade", "fc")], t.loc[("spearman, cascade", "layer4")]
    assert fc["value"] == pytest.approx(0.4) and fc["n_patients"] == 2 and fc["n_empty"] == 0
    # the emptied map is out of the mean (0.2, not 0.133) and counted apart
    assert l4["value"] == pytest.approx(0.2) and l4["n"] == 2 and l4["n_empty"] == 1
    assert 0.3 - 1e-9 <= fc["ci_low"] <= fc["ci_high"] <= 0.6 + 1e-9  # p1's pair (0.3) or p2's film (0.6)
    games = t.xs("", level="block")
    assert (
        games.loc["pointing game, trained model", "value"] == 1.0
        and games.loc["pointing game, trained model", "n"] == 2
    )
    assert games.loc["pointing game, uniform in lung", "value"] == pytest.approx(0.375)
    assert games.loc["pointing game, trained minus uniform", "value"] == pytest.approx(0.625)
    # the deepest cascade step's peaks: a (1,1) misses 4..8, b (9,1) misses 0..3
    randomised = t.loc[("pointing game, randomised model", "layer4")]
    assert randomised["value"] == 0.0 and randomised["n"] == 2
    assert t.loc[("pointing game, trained minus randomised", "layer4"), "value"] == 1.0
    # an emptied randomised map has no peak: it scores its film's chance (b: 0.5)
    emptied = _randomisation_rows()
    emptied.loc[(emptied["depth"] == 2) & (emptied["image_id"] == "b"), ["peak_row", "peak_col"]] = -1
    e = saliency_sanity(emptied, saliency, patients, n_boot=20, seed=0, min_patients=1).set_index(["check", "block"])
    assert e.loc[("pointing game, randomised model", "layer4"), "value"] == pytest.approx(0.25)
    assert games.loc["lung mass, trained minus evenly spread", "value"] == pytest.approx(0.2)
    # below the minimum number of patients: no figure, the reason instead
    short = saliency_sanity(_randomisation_rows(), saliency, patients, n_boot=20, seed=0, min_patients=3)
    assert short["value"].isna().all() and short["note"].str.contains("statistics.min_patients").all()


def test_the_saliency_checks_of_no_film_are_nan_not_an_error() -> None:
    import pandas as pd

    from patchcxr.classification.explain import SALIENCY_COLUMNS
    from patchcxr.classification.sanity import RANDOMISATION_COLUMNS, saliency_sanity

    # no test film of the target class, or none with lesion boxes (real data): counts 0, NaN
    empty = saliency_sanity(
        pd.DataFrame(columns=RANDOMISATION_COLUMNS),
        pd.DataFrame(columns=SALIENCY_COLUMNS),
        {},
        n_boot=20,
        seed=0,
        min_patients=1,
    )
    assert (empty["n"] == 0).all() and empty["value"].isna().all() and empty["ci_low"].isna().all()
