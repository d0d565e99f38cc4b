"""The paper's universal preprocessing on known arrays (method.md §3.2)."""

from __future__ import annotations

import numpy as np
import pytest

from patchcxr.preprocess import (
    blank_band_start,
    crop_blank_band,
    equalisation_lut,
    gamma_lut,
    preprocess,
    resize,
)

rng = np.random.default_rng(0)


def test_lut_is_monotone_and_spans_0_to_255() -> None:
    img = rng.integers(100, 3000, (64, 64)).astype(np.uint16)
    lut = equalisation_lut(img)
    used = lut[np.unique(img)]
    assert np.all(np.diff(used) >= 0)
    assert used.min() == 0 and used.max() == pytest.approx(255)
    assert lut.shape == (int(img.max()) + 1,)


def test_equalisation_of_a_known_histogram() -> None:
    # levels 0..3 with counts 1, 1, 2, 4: cdf 1, 2, 4, 8 -> (cdf - 1) / 7 * 255
    img = np.array([0, 1, 2, 2, 3, 3, 3, 3], np.uint8).reshape(2, 4)
    np.testing.assert_allclose(equalisation_lut(img), np.array([0, 1, 3, 7]) / 7 * 255)


def test_jsrt_branch_inverts_and_cuts_the_lowest_levels() -> None:
    img = np.array([0] * 12 + [1] * 4 + [2] * 8 + [3] * 8, np.uint16).reshape(4, 8)
    lut = equalisation_lut(img, jsrt=True)
    # cdf 12, 16, 24, 32; low cut 12 + 10 = 22 masks levels 0 and 1 (filled with 0);
    # the rest scales to 0..255 and is inverted: level 2 -> 255, level 3 -> 0
    np.testing.assert_allclose(lut, [0, 0, 255, 0])


def test_gamma_half_brightens_midtones() -> None:
    lut = gamma_lut(np.array([0.0, 63.75, 255.0]), 0.5)
    np.testing.assert_allclose(lut, [0, 127.5, 255])
    with pytest.raises(ValueError, match="positive"):
        gamma_lut(np.array([1.0]), 0)


def test_preprocess_range_dtype_and_size() -> None:
    img = rng.integers(0, 255, (300, 200)).astype(np.uint8)
    out = preprocess(img, size=128)
    assert out.dtype == np.float32 and out.shape == (128, 128)
    assert out.min() >= 0 and out.max() <= 255


def test_jsrt_harmonised_film_comes_out_bone_bright() -> None:
    # harmonised JSRT: bone bright (4095 - raw); the JSRT branch works on raw values and
    # inverts, so the result must still have bone bright
    bone = rng.integers(3000, 3600, (32, 64)).astype(np.uint16)
    bone[:, 32:] = rng.integers(400, 1200, (32, 32))  # air
    out = preprocess(bone, "jsrt")
    assert out[:, :32].mean() > out[:, 32:].mean() + 50
    # the JSRT cut-off (lowest raw levels + 10 pixels, i.e. the densest) is filled with 0,
    # as in the official code: only a handful of pixels
    assert (out[:, :32] == 0).sum() <= 11
    # apart from those, the JSRT branch orders pixels as the plain one does
    plain = preprocess(bone)
    keep = out > 0
    assert np.corrcoef(out[keep], plain[keep])[0, 1] > 0.99


def test_minmax_arm_is_a_plain_rescaling() -> None:
    img = np.array([[10, 20], [30, 50]], np.uint16)
    np.testing.assert_allclose(preprocess(img, equalise=False), [[0, 63.75], [127.5, 255]])


def test_blank_band_crop_and_its_idempotence() -> None:
    img = np.full((100, 80), 120, np.uint8)
    img[85:] = 0  # a blank band
    assert blank_band_start(img) == 85
    once = crop_blank_band(img)
    assert once.shape == (85, 80)
    assert crop_blank_band(once) is once  # nothing left to crop
    no_band = np.full((50, 50), 7, np.uint8)
    assert crop_blank_band(no_band) is no_band


def test_equalisation_is_idempotent_on_an_already_equalised_uniform_image() -> None:
    # a uniform histogram over 0..255 is its own equalisation
    img = np.arange(256, dtype=np.uint8).repeat(4).reshape(32, 32)
    lut = equalisation_lut(img)
    np.testing.assert_allclose(lut[img], img, atol=1e-9)


def test_resize_keeps_constant_images_constant() -> None:
    out = resize(np.full((37, 53), 42.0, np.float32), (16, 24))
    assert out.shape == (16, 24)
    np.testing.assert_allclose(out, 42.0, atol=1e-4)


def test_rejects_float_or_negative_input() -> None:
    with pytest.raises(ValueError, match="integer"):
        equalisation_lut(np.zeros((4, 4), np.float32))


def test_two_step_resize_stays_close_to_the_official_one_step_bicubic() -> None:
    from patchcxr.synthetic import render, sample_spec
    from patchcxr.synthetic.exposure import EXPOSURES, expose

    r = np.random.default_rng(1)
    film = render(sample_spec(r, "covid19"), 2400, 2000)
    px = np.round(expose(film.density, r, EXPOSURES["montgomery"]) * 255).astype(np.uint8)
    full = preprocess(px)
    diff = np.abs(resize(full, 256, None) - resize(full, 256))
    assert diff.mean() < 0.2 and diff.max() < 3.0


# ----------------------------------------------------------------------------- settings
def test_one_settings_class_makes_the_segmentation_input_as_the_old_one_did() -> None:
    from patchcxr.preprocess import PreprocessSettings

    px = rng.integers(1, 255, (90, 70)).astype(np.uint8)
    px[70:, :] = 0  # a blank bottom band
    for equalise in (True, False):
        prep = PreprocessSettings(size=32, equalise=equalise, gamma=0.5, crop_band=True)
        assert prep.band(px, "cohen") == 70 and prep.kept_rows(px, "cohen") == 70
        assert prep.band(px, "jsrt") is None  # JSRT films are raw: never cropped
        expected = preprocess(px[:70], "cohen", gamma=0.5, size=32, equalise=equalise) / np.float32(255.0)
        np.testing.assert_array_equal(prep.image(px, "cohen"), expected)
    # without a size (the stages that resize on their own) the image keeps its size
    assert PreprocessSettings().image(px, "cohen").shape == (70, 70)


def test_model_files_keep_their_preprocessing_records() -> None:
    import json

    from patchcxr.classification.settings import InputSettings
    from patchcxr.preprocess import PreprocessSettings

    # a segmentation model file: the rule's parameters (workflow/rules/common.smk) in, the
    # keys and order of every file written so far out, and such a file loads back
    params = {"size": 256, "gamma": 0.5, "crop_band": True, "equalise": False}
    record = json.dumps(PreprocessSettings(**params).to_dict())
    assert record == '{"size": 256, "equalise": false, "gamma": 0.5, "crop_band": true}'
    assert PreprocessSettings(**json.loads(record)) == PreprocessSettings(**params)
    # a classifier model file records gamma and crop_band (its size is the input's own)
    inputs = InputSettings(
        size=1024, preprocessing=PreprocessSettings.from_config({"gamma": 0.5, "crop_blank_band": True})
    )
    assert json.dumps(inputs.to_dict()) == (
        '{"size": 1024, "preprocessing": {"gamma": 0.5, "crop_band": true}, "mask_source": "predicted"}'
    )
    assert InputSettings.from_dict(json.loads(json.dumps(inputs.to_dict()))) == inputs
    # ... and refuses settings it would not record
    with pytest.raises(ValueError, match=r"resized to InputSettings\.size"):
        InputSettings(size=1024, preprocessing=PreprocessSettings(size=256))
    with pytest.raises(ValueError, match="equalised"):
        InputSettings(size=1024, preprocessing=PreprocessSettings(equalise=False))
    with pytest.raises(TypeError):
        PreprocessSettings(0.5, True)  # type: ignore[misc]  # keywords only: the field order is the record's
