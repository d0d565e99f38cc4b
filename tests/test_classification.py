"""Classifier inputs and training mechanics (method.md §5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from patchcxr.classification.data import build_inputs, load_input, masked_input
from patchcxr.classification.predict import predict_probs
from patchcxr.classification.settings import ClassifierSettings, InputSettings
from patchcxr.classification.train import balanced_weights, make_batches, train_classifier
from patchcxr.data.splits import classification_split
from patchcxr.io import read_png
from patchcxr.models.state import Runtime
from patchcxr.preprocess import PreprocessSettings
from patchcxr.training import TrainingFiles
from tests.helpers import film_with_two_masks, planted_inputs


@pytest.fixture(scope="module")
def inputs(synthetic_manifest: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Cached 256² inputs of the synthetic images with ground-truth masks (standing in for
    their predicted masks here), and a split."""
    manifest, _, _ = synthetic_manifest
    masked = manifest[(manifest["has_lung_mask"] == "1") & (manifest["label5"] != "")]
    cohort = masked[["image_id", "label5", "label4", "patient_id", "source"]].assign(cohort_row="")
    out = tmp_path_factory.mktemp("cls")
    table = build_inputs(
        manifest, cohort, masked[["image_id", "mask_path"]], out / "inputs", settings=InputSettings(size=256)
    )
    table.to_csv(out / "inputs.tsv", sep="\t", index=False)
    split = classification_split(cohort, {"train": 0.6, "val": 0.2, "test": 0.2}, 3)
    split.to_csv(out / "split.tsv", sep="\t", index=False)
    return out / "inputs.tsv", out / "split.tsv"


def test_masked_input_is_zero_outside_the_lung() -> None:
    pixels = np.random.default_rng(0).integers(1, 255, (300, 300)).astype(np.uint8)
    labels = np.zeros((300, 300), np.uint8)
    labels[50:250, 30:140], labels[50:250, 160:270] = 3, 2
    img, lung = masked_input(
        pixels, "cohen", labels, InputSettings(size=128, preprocessing=PreprocessSettings(crop_band=False))
    )
    assert img.shape == lung.shape == (128, 128) and img.dtype == np.uint8
    assert (img[~lung] == 0).all() and img[lung].mean() > 50


def test_inputs_are_cached_once_per_image(inputs: tuple[Path, Path]) -> None:
    table = pd.read_csv(inputs[0], sep="\t")
    assert len(table) and table["image_id"].is_unique and (table["mask_source"] == "predicted").all()
    img, lung = load_input(table["input_path"].iloc[0], table["lung_path"].iloc[0])
    assert img.shape == (1, 256, 256) and lung.shape == (256, 256) and float(img[0][~lung].abs().max()) == 0


def test_class_balanced_draws_on_imbalanced_training_data() -> None:
    targets = np.array([0] * 90 + [1] * 10)
    picks = torch.multinomial(
        balanced_weights(targets, 2), 20000, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    share = np.bincount(targets[picks.numpy()], minlength=2) / 20000
    assert share == pytest.approx([0.5, 0.5], abs=0.02)


def test_training_batches_are_patches_in_the_lung_and_seeded(inputs: tuple[Path, Path]) -> None:
    table = pd.read_csv(inputs[0], sep="\t")
    imgs, lungs = zip(
        *(load_input(a, b) for a, b in zip(table["input_path"], table["lung_path"], strict=True)), strict=True
    )
    y = np.arange(len(table)) % 2
    s = ClassifierSettings(patch=64, batch_size=4, flip=0.0, rotate=0)
    batches = make_batches(list(imgs), list(lungs), y, n_classes=2, settings=s, device=torch.device("cpu"))
    first = [b[0] for b in batches(1)]
    again = [b[0] for b in batches(1)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (4, 3, 64, 64)
    assert not all(torch.equal(a, b) for a, b in zip(first, [b[0] for b in batches(2)], strict=False))


def test_an_epoch_whose_draws_leave_one_over_trains_without_a_batch_of_one(inputs: tuple[Path, Path]) -> None:
    # 9 draws in batches of 4: 4 + 5, not 4 + 4 + 1 (a ResNet's batch norm fails on one
    # patch whose layer4 map is 1 x 1: the scaling benchmark's 300-film run stopped there)
    from patchcxr.classification.train import batch_starts
    from patchcxr.models.classifier import network

    assert batch_starts(9, 4) == [0, 4] and batch_starts(8, 4) == [0, 4] and batch_starts(10, 4) == [0, 4, 8]
    assert batch_starts(1, 4) == [0] and batch_starts(5, 4) == [0]
    table = pd.read_csv(inputs[0], sep="\t")
    imgs, lungs = zip(
        *(load_input(a, b) for a, b in zip(table["input_path"], table["lung_path"], strict=True)), strict=True
    )
    y = np.arange(len(table)) % 2
    s = ClassifierSettings(patch=32, batch_size=4, draws=9)
    batches = list(make_batches(list(imgs), list(lungs), y, n_classes=2, settings=s, device=torch.device("cpu"))(1))
    assert [len(b[1]) for b in batches] == [4, 5]
    model = network("resnet18", 2).train()
    for x, target in batches:  # 32² patches: layer4 is 1 x 1, where a batch of one fails
        torch.nn.functional.cross_entropy(model(x), target).backward()
    one = ClassifierSettings(draws=1)
    with pytest.raises(ValueError, match="batch norm needs at least 2"):
        make_batches(list(imgs), list(lungs), y, n_classes=2, settings=one, device=torch.device("cpu"))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["local", "global"])
def test_training_saves_a_model_that_votes(tmp_path: Path, inputs: tuple[Path, Path], mode: str) -> None:
    s = ClassifierSettings(mode=mode, patch=64, batch_size=8, epochs=2, lr=1e-4, k_val=4, patience=None)
    md = train_classifier(
        inputs_path=str(inputs[0]),
        split_path=str(inputs[1]),
        settings=s,
        input_settings=InputSettings(size=256),
        files=TrainingFiles(
            model=tmp_path / "m.pt",
            metadata=tmp_path / "m.json",
            history=tmp_path / "h.tsv",
            resume_dir=tmp_path / "resume",
        ),
        runtime=Runtime(device="cpu"),
    )
    assert md["epochs_run"] == 2 and md["config"]["classifier"]["mode"] == mode
    assert not (tmp_path / "resume" / "state.pt").exists()
    assert (tmp_path / "progress.png").is_file()  # the run's progress plot beside its history
    from patchcxr.models.classifier import network
    from patchcxr.models.state import load_state

    state = load_state(tmp_path / "m.pt")
    model = network("resnet18", len(state["classes"]))
    model.load_state_dict(state["state_dict"])
    model.eval()
    table = pd.read_csv(inputs[0], sep="\t")
    img, lung = load_input(table["input_path"].iloc[0], table["lung_path"].iloc[0])
    probs, wins = predict_probs(
        model, img, lung, s, k=10, rng=np.random.default_rng(0), device=torch.device("cpu"), batch=4
    )
    assert probs.shape == ((10 if mode == "local" else 1), 4)
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))
    if mode == "local":  # 64-pixel windows that overlap the lung
        lung_img = read_png(table["lung_path"].iloc[0]) > 0
        assert all(lung_img[t:b, left:r].any() for t, left, b, r in wins.tolist())
        assert ((wins[:, 2] - wins[:, 0]) == 64).all()
        # the shared-trunk mode decides the same images through the same file format
        from patchcxr.classification.predict import predict_split

        exact = predict_split(tmp_path / "m.pt", inputs[0], inputs[1], k=8, runtime=Runtime(device="cpu"))
        shared = predict_split(
            tmp_path / "m.pt", inputs[0], inputs[1], k=8, runtime=Runtime(device="cpu"), mode="shared_trunk"
        )
        # (their agreement on known answers: tests/test_shared_trunk.py)
        assert list(shared.columns) == list(exact.columns) and (shared["image_id"] == exact["image_id"]).all()
        assert np.allclose(shared.filter(like="prob_").sum(axis=1), 1.0, atol=1e-4)
        votes = exact.filter(like="votes_").to_numpy()
        assert (votes.sum(axis=1) == 8).all() and (exact["k"] == 8).all()
        # the hard vote is the class with the most patch votes
        assert (votes[np.arange(len(votes)), exact["pred_hard_index"].to_numpy(int)] == votes.max(axis=1)).all()
        # the model file and the table record the precision that ran (auto, resolved)
        assert state["precision"] == Runtime(device="cpu").precision == exact["precision"].iloc[0]
        # bf16 autocast against fp32 on the same patches: the same calls, probabilities within 0.02
        fp32 = predict_split(
            tmp_path / "m.pt", inputs[0], inputs[1], k=8, runtime=Runtime(device="cpu", precision="fp32")
        )
        bf16 = predict_split(
            tmp_path / "m.pt", inputs[0], inputs[1], k=8, runtime=Runtime(device="cpu", precision="bf16")
        )
        assert (fp32["precision"] == "fp32").all() and (bf16["precision"] == "bf16").all()
        assert (fp32["pred_soft"] == bf16["pred_soft"]).mean() >= 0.9
        gap = np.abs(fp32.filter(like="prob_").to_numpy() - bf16.filter(like="prob_").to_numpy())
        assert gap.max() < 0.02, gap.max()


@pytest.mark.parametrize(
    ("source", "kind", "rows"),
    [("predicted", "predicted", slice(64, 128)), ("truth_where_available", "truth", slice(0, 64))],
)
def test_inputs_use_the_predicted_mask_unless_ground_truth_is_asked_for(
    tmp_path: Path, source: str, kind: str, rows: slice
) -> None:
    manifest, cohort, masks = film_with_two_masks(tmp_path, predicted_lung=True)
    settings = InputSettings(size=128, preprocessing=PreprocessSettings(crop_band=False), mask_source=source)
    table = build_inputs(manifest, cohort, masks, tmp_path / "out", settings=settings)
    assert table["mask_source"].tolist() == [kind]
    lung = read_png(table["lung_path"].iloc[0]) > 0
    assert lung[rows].sum() == lung.sum() > 0  # the lung lies where the chosen mask has it


def test_an_image_whose_predicted_lung_is_empty_keeps_an_input_from_the_atlas(tmp_path: Path) -> None:
    from patchcxr.masks import atlas_labels

    manifest, cohort, masks = film_with_two_masks(tmp_path, predicted_lung=False)
    settings = InputSettings(size=128, preprocessing=PreprocessSettings(crop_band=False))
    table = build_inputs(manifest, cohort, masks, tmp_path / "out", settings=settings)
    assert table["mask_source"].tolist() == ["atlas"]  # flagged, not dropped
    lung = read_png(table["lung_path"].iloc[0]) > 0
    atlas = atlas_labels((128, 128)) > 0
    assert (lung == atlas).mean() > 0.99 and 0.2 < lung.mean() < 0.5


@pytest.mark.parametrize("mode", ["local", "global"])
def test_the_classifier_learns_planted_class_patterns_far_above_chance(tmp_path: Path, mode: str) -> None:
    from patchcxr.classification.predict import predict_split

    counts = {"train": {"normal": 24, "tb": 24}, "val": {"normal": 4, "tb": 4}, "test": {"normal": 10, "tb": 10}}
    table = planted_inputs(tmp_path, counts)  # type: ignore[arg-type]
    table.drop(columns="split").to_csv(tmp_path / "inputs.tsv", sep="\t", index=False)
    table[["image_id", "split"]].to_csv(tmp_path / "split.tsv", sep="\t", index=False)
    s = ClassifierSettings(
        mode=mode,
        patch=32,
        batch_size=16,
        epochs=6,
        lr=1e-3,
        weight_decay=0.0,
        l1=0.0,
        k_val=4,
        patience=None,
        draws=256,
    )
    train_classifier(
        inputs_path=str(tmp_path / "inputs.tsv"),
        split_path=str(tmp_path / "split.tsv"),
        settings=s,
        input_settings=InputSettings(size=96),
        files=TrainingFiles(
            model=tmp_path / "m.pt", metadata=tmp_path / "m.json", history=tmp_path / "h.tsv", resume_dir=tmp_path / "r"
        ),
        runtime=Runtime(device="cpu"),
    )
    pred = predict_split(
        tmp_path / "m.pt", tmp_path / "inputs.tsv", tmp_path / "split.tsv", k=10, runtime=Runtime(device="cpu")
    )
    accuracy = float((pred["pred_hard"] == pred["true"]).mean())
    # chance is 0.5 on the 20 balanced test films; 18 or more right has probability 2e-4
    # under chance (one-sided binomial): the bound leaves a margin of 0.4 over chance
    assert len(pred) == 20 and accuracy >= 0.9, pred[["image_id", "true", "pred_hard"]]
    # model selection's macro-F1 runs over the classes the validation films hold (2 of the
    # model's 4): a run that separates them scores near 1, not at most 0.5
    history = pd.read_csv(tmp_path / "h.tsv", sep="\t")
    assert history["val_macro_f1"].max() > 0.75, history["val_macro_f1"].tolist()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_training_step_and_a_k_vote_run_under_cpu_autocast(tmp_path: Path, precision: str) -> None:
    # the mixed-precision path of a GPU profile, exercised on the CPU (issue 19)
    from patchcxr.models.classifier import network
    from patchcxr.training import Trainer

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    torch.manual_seed(0)
    model = network("resnet18", 2)
    seen: list[torch.dtype] = []
    hook = model.conv1.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    before = model.fc.weight.detach().clone()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    trainer = Trainer(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        scheduler=None,
        # fp16's loss scaler skips the first steps while its scale comes down from 2**16
        batches=lambda epoch: [(x, y)] * 20,
        loss=lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]),
        validate=lambda m: {"score": float(m(x).float().softmax(1)[:, 0].mean())},
        select_metric="score",
        epochs=1,
        seed=0,
        resume_path=tmp_path / "state.pt",
        fingerprint="f",
        precision=precision,
    )
    result = trainer.fit()
    hook.remove()
    # the steps' forwards and the validation ran in half precision, the weights stay fp32 and moved
    assert len(seen) == 21 and set(seen) == {half} and model.fc.weight.dtype == torch.float32
    assert not torch.equal(model.fc.weight, before) and np.isfinite(result.history[0]["train_loss"])
    # the K-patch vote under the same autocast: probabilities in fp32, close to the fp32 vote
    model.eval()
    lung = np.zeros((96, 96), bool)
    lung[20:80, 10:45] = lung[20:80, 52:88] = True
    img = torch.rand(1, 96, 96) * torch.from_numpy(lung)
    settings = ClassifierSettings(patch=32)
    seen.clear()
    hook = model.conv1.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    mixed, _ = predict_probs(
        model, img, lung, settings, k=6, rng=np.random.default_rng(0), device=torch.device("cpu"), precision=precision
    )
    hook.remove()
    exact, _ = predict_probs(model, img, lung, settings, k=6, rng=np.random.default_rng(0), device=torch.device("cpu"))
    assert seen == [half] and mixed.dtype == torch.float32
    assert torch.allclose(mixed.sum(1), torch.ones(6)) and torch.allclose(mixed, exact, atol=0.05)
    with pytest.raises(ValueError, match="precision must be one of"):
        predict_probs(
            model, img, lung, settings, k=1, rng=np.random.default_rng(0), device=torch.device("cpu"), precision="fp8"
        )
    # probabilistic Grad-CAM under the same autocast: the trunk in half precision, the map
    # (fp32) ranks the lung's pixels as the fp32 map does
    from patchcxr.classification.explain import image_saliency

    big = np.zeros((256, 256), bool)
    big[40:220, 20:120] = big[40:220, 136:236] = True
    film = torch.rand(1, 256, 256) * torch.from_numpy(big)
    wide = ClassifierSettings(patch=96)  # layer4 maps of 3x3: a Grad-CAM with a shape
    torch.manual_seed(1)
    fresh = network("resnet18", 2).eval()  # the 20 steps at 32² leave layer4 dead at 96²

    def cam(p: str) -> np.ndarray:
        seen.clear()
        hook = fresh.conv1.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        sal, probs = image_saliency(
            fresh, film, big, wide, k=6, target=0, rng=np.random.default_rng(0), device=torch.device("cpu"), precision=p
        )
        hook.remove()
        assert seen == [half if p != "fp32" else torch.float32] and probs.dtype == torch.float32
        return sal

    mixed_map, exact_map = cam(precision), cam("fp32")
    assert mixed_map.dtype == exact_map.dtype and np.ptp(exact_map[big]) > 0
    assert np.corrcoef(mixed_map[big], exact_map[big])[0, 1] > 0.95


def test_the_runtime_of_a_job_reads_its_resources_and_refuses_an_unknown_precision() -> None:
    from types import SimpleNamespace

    job = Runtime.of_job(SimpleNamespace(device="cpu", precision="bf16"), 3)
    assert job == Runtime(device="cpu", precision="bf16", threads=3) and job.torch_device == torch.device("cpu")
    default = Runtime.of_job(SimpleNamespace(), 1)
    assert default.requested == "auto" and default == Runtime(device="auto", precision="auto", threads=1)
    with pytest.raises(ValueError, match="precision must be one of"):
        Runtime(precision="fp8")


def test_auto_precision_is_bf16_only_where_the_device_computes_bf16_natively(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from patchcxr.models import state

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert state.resolve_precision("auto", cpu, bf16=True) == "bf16"
    assert state.resolve_precision("auto", cpu, bf16=False) == "fp32"
    assert state.resolve_precision("fp32", cpu, bf16=True) == "fp32"  # one setting away: exact
    assert state.resolve_precision("fp16", gpu, bf16=False) == "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        state.resolve_precision("int8", cpu)
    # the capability: CPU flags (AVX-512 BF16 or AMX), a CUDA device's bf16 support
    monkeypatch.setattr(state, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert state.native_bf16(cpu) and Runtime(device="cpu").precision == "bf16"
    monkeypatch.setattr(state, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert state.native_bf16(cpu)
    monkeypatch.setattr(state, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert not state.native_bf16(cpu)
    run = Runtime(device="cpu")
    assert (run.precision, run.requested) == ("fp32", "auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert not state.native_bf16(gpu) and Runtime(device="cuda").precision == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert Runtime(device="cuda").precision == "bf16"
    # inference under auto: in the arithmetic the model was trained in (bf16 where native);
    # an explicit precision is kept; unknown: the resolved auto
    auto, forced = Runtime(device="cuda"), Runtime(device="cuda", precision="bf16")
    assert auto.for_inference("fp32") == "fp32" and auto.for_inference("bf16") == "bf16"
    assert auto.for_inference(None) == "bf16" and forced.for_inference("fp32") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert Runtime(device="cuda").for_inference("bf16") == "fp32"


def test_input_settings_are_written_once_and_read_back_whole(tmp_path: Path) -> None:
    # results/classification/inputs.json: what every reader of the inputs gets
    made = InputSettings.from_config(
        {"input_size": 512, "mask_source": "truth_where_available"}, {"gamma": 0.7, "crop_blank_band": False}
    )
    made.write(tmp_path / "inputs.json")
    back = InputSettings.read(tmp_path / "inputs.json")
    assert back == made and back.preprocessing.gamma == 0.7 and back.mask_source == "truth_where_available"
    assert json.loads((tmp_path / "inputs.json").read_text()) == made.to_dict()  # the model file's record


def test_a_film_gets_the_same_patches_wherever_it_stands_in_a_table() -> None:
    # seeded by the run's seed and the film's id, not its row: the internal test split, a
    # held-out source's split and a probe's view draw the same patches for the same film
    from patchcxr.classification.patches import film_rng, sample_centres

    lung = np.zeros((128, 128), bool)
    lung[20:110, 15:60] = True
    a = sample_centres(lung, 8, film_rng(2020, "shenzhen/CHNCXR_0001_0"))
    b = sample_centres(lung, 8, film_rng(2020, "shenzhen/CHNCXR_0001_0"))
    other = sample_centres(lung, 8, film_rng(2020, "shenzhen/CHNCXR_0002_0"))
    again = sample_centres(lung, 8, film_rng(2021, "shenzhen/CHNCXR_0001_0"))
    assert np.array_equal(a, b) and not np.array_equal(a, other) and not np.array_equal(a, again)


def test_the_epoch_line_says_how_long_the_rest_should_take() -> None:
    from patchcxr.training import eta

    assert eta([10.0, 12.0], 3) == "33 s"
    assert eta([50.0, 70.0], 2) == "2 min 00 s"
    assert eta([4000.0], 1) == "1 h 06 min"
    assert eta([10.0], 0) == "0 s" and eta([], 5) == "0 s"


def test_the_progress_plot_shows_the_losses_and_marks_the_kept_epoch(tmp_path: Path) -> None:
    from PIL import Image

    from patchcxr.figures import plot_progress

    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [1.0, 0.7, 0.5], "val_loss": [0.9, 0.6, 0.8], "seconds": [5, 5, 5]}
    )
    history.to_csv(tmp_path / "history.tsv", sep="\t", index=False)
    plot_progress(tmp_path / "history.tsv", tmp_path / "progress.png", select_metric="val_loss", title="run")
    image = Image.open(tmp_path / "progress.png")
    assert image.format == "PNG" and image.size[0] > 1000
