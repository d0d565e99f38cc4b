"""Training recipes (issue 26): how a named recipe overrides the training settings, and
what each of its knobs does to a training run — schedule, staged unfreezing, frozen batch
norm, intensity augmentation, model-selection scores — on known ground truth; and a
MobileNetV2 classifier from training through prediction and saliency."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from patchcxr.classification.settings import ClassifierSettings, InputSettings, recipe_settings, settings_from
from patchcxr.classification.train import (
    augment,
    epoch_setup,
    lr_factor,
    make_optimiser,
    train_classifier,
    validation_scores,
)
from patchcxr.models.classifier import BACKBONES, network
from patchcxr.models.state import Runtime, load_state
from patchcxr.training import TrainingFiles, seed_everything
from tests.conftest import ROOT
from tests.helpers import planted_inputs

CLASSIFICATION = {
    "backbone": "resnet18",
    "recipe": "paper",
    "recipes": {"paper": {}, "fast": {"lr": 2e-3, "optimizer": "adamw", "trunk_lr": None, "patience": None}},
    "train": {"lr": 1e-5, "epochs": 30, "patch": 112, "seeds": [1, 2]},
}


def test_a_recipe_overrides_train_and_names_itself() -> None:
    paper = recipe_settings(CLASSIFICATION, 7)
    assert paper == {
        "lr": 1e-5,
        "epochs": 30,
        "patch": 112,
        "backbone": "resnet18",
        "recipe": "paper",
        "mode": "local",
        "seed": 7,
    }
    fast = settings_from(recipe_settings(CLASSIFICATION | {"recipe": "fast", "backbone": "mobilenet_v2"}, 7))
    assert (fast.lr, fast.optimizer, fast.epochs, fast.patch) == (2e-3, "adamw", 30, 112)  # recipe wins, train stays
    assert (fast.backbone, fast.recipe, fast.seed, fast.patience, fast.trunk_lr) == (
        "mobilenet_v2",
        "fast",
        7,
        None,
        None,
    )


def test_a_recipe_may_give_each_mode_keys_of_its_own() -> None:
    # a patch per draw (local) against the same whole film on every draw (global)
    recipes = {"paper": {}, "fast": {"lr": 2e-3, "draws_per_film": 4.0, "global": {"draws_per_film": 1.0}}}
    cfg = CLASSIFICATION | {"recipe": "fast", "recipes": recipes}
    local = settings_from(recipe_settings(cfg, 7, "local"))
    whole = settings_from(recipe_settings(cfg, 7, "global"))
    assert (local.mode, local.draws_per_film, local.lr) == ("local", 4.0, 2e-3)
    assert (whole.mode, whole.draws_per_film, whole.lr) == ("global", 1.0, 2e-3)
    with pytest.raises(ValueError, match="mode must be one of local, global"):
        recipe_settings(cfg, 7, "shared")
    bad = CLASSIFICATION | {"recipe": "x", "recipes": {"x": {"global": {"lr": "fast"}}}}
    with pytest.raises(ValueError, match=r"recipes\.x\.global\.lr: 'fast' is not of the setting's kind"):
        recipe_settings(bad, 7, "local")


@pytest.mark.parametrize(
    ("recipes", "message"),
    [
        ({"paper": {}}, "'other' is not among classification.recipes: paper"),
        ({"other": {"learning_rate": 1.0}}, "learning_rate cannot be set by a recipe"),
        ({"other": {"backbone": "resnet18"}}, "backbone cannot be set by a recipe"),
        ({"other": {"epochs": 2.5}}, r"other\.epochs: 2\.5 is not of the setting's kind"),
        ({"other": {"schedule": 1}}, r"other\.schedule: 1 is not of the setting's kind"),
    ],
)
def test_a_recipe_that_cannot_apply_is_refused(recipes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recipe_settings(CLASSIFICATION | {"recipe": "other", "recipes": recipes}, 1)


def test_unknown_choices_of_a_setting_are_refused() -> None:
    with pytest.raises(ValueError, match="optimizer must be one of adam, adamw, got 'sgd'"):
        ClassifierSettings(optimizer="sgd")
    with pytest.raises(ValueError, match="select must be one of"):
        ClassifierSettings(select="val_f1")


def test_the_configurations_recipes_apply_and_the_paper_recipe_is_the_papers() -> None:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["classification"]
    assert cfg["backbone"] == "resnet18" and cfg["recipe"] == "paper" and cfg["weights"]["route"] == "torchvision"
    for name in cfg["recipes"]:
        for mode in ("local", "global"):
            settings_from(recipe_settings(cfg | {"recipe": name}, 1, mode))
    paper = settings_from(recipe_settings(cfg, 1))
    # method.md §5.4: Adam 1e-5, weight decay 0.1 as written, L1 1e-5, batch 16, 100 epochs,
    # a constant rate, selection by validation macro-F1, one patch per film per epoch
    assert (paper.optimizer, paper.lr, paper.weight_decay, paper.l1) == ("adam", 1e-5, 0.1, 1e-5)
    assert (paper.batch_size, paper.epochs, paper.schedule, paper.warmup_epochs) == (16, 100, "constant", 0)
    assert (paper.select, paper.draws_for(354), paper.trunk_lr, paper.freeze_epochs) == ("val_macro_f1", 354, None, 0)
    assert (paper.label_smoothing, paper.intensity, paper.batch_norm) == (0.0, 0.0, "train")


def test_warm_up_then_constant_or_cosine_per_step() -> None:
    s = ClassifierSettings(epochs=10, warmup_epochs=2, schedule="cosine")
    f = [lr_factor(i, steps_per_epoch=5, settings=s) for i in range(50)]
    assert f[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # linear over 2 epochs of 5 steps
    assert f[10] == pytest.approx(1.0) and f[30] == pytest.approx(0.5) and f[49] == pytest.approx(0.0, abs=0.01)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))  # decays monotonically
    flat = ClassifierSettings(epochs=10)
    assert {lr_factor(i, steps_per_epoch=5, settings=flat) for i in range(50)} == {1.0}


def test_the_trunk_and_the_head_get_their_own_rates() -> None:
    model = network("mobilenet_v2", 3)
    opt = make_optimiser(model, ClassifierSettings(backbone="mobilenet_v2", lr=1e-3, trunk_lr=1e-4, optimizer="adamw"))
    trunk, head = opt.param_groups
    assert isinstance(opt, torch.optim.AdamW) and (trunk["lr"], head["lr"]) == (1e-4, 1e-3)
    assert {id(p) for p in head["params"]} == {id(p) for p in model.get_submodule("classifier.1").parameters()}
    assert len(trunk["params"]) + len(head["params"]) == len(list(model.parameters()))


def test_staged_unfreezing_and_frozen_batch_norm() -> None:
    model = network("resnet18", 2)
    setup = epoch_setup(model, ClassifierSettings(freeze_epochs=1, batch_norm="frozen"))
    model.train()
    setup(1)
    grads = {k: p.requires_grad for k, p in model.named_parameters()}
    assert grads["fc.weight"] and not grads["conv1.weight"] and not grads["layer4.1.bn2.weight"]
    assert not model.bn1.training and not model.layer4[1].bn2.training and model.fc.training
    model.train()
    setup(2)
    assert all(p.requires_grad for p in model.parameters()) and not model.bn1.training


def test_intensity_augmentation_keeps_the_mask_and_the_papers_draws() -> None:
    x = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4).repeat(8, 1, 4, 1)
    plain_gen, jitter_gen = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    plain = augment(x, plain_gen, 0.0, 0, intensity=0.0)
    assert torch.equal(plain, x)
    jittered = augment(x, jitter_gen, 0.0, 0, intensity=0.3)
    assert torch.all(jittered[..., 0] == 0) and torch.allclose(jittered[..., 3], torch.ones(1))
    gammas = torch.log(jittered[:, 0, 0, 2]) / math.log(0.5)  # the exponent of each sample
    assert float(gammas.min()) >= math.exp(-0.3) - 1e-5 and float(gammas.max()) <= math.exp(0.3) + 1e-5
    assert len(set(gammas.round(decimals=4).tolist())) == 8  # one draw per sample
    # without intensity no draw is taken: the generator is where the paper's stream leaves it
    reference = torch.Generator().manual_seed(0)
    for _ in range(8):
        torch.rand(1, generator=reference)  # one flip draw per sample, no rotation at 0 degrees
        torch.randint(0, 1, (1,), generator=reference)
    assert torch.equal(torch.rand(3, generator=plain_gen), torch.rand(3, generator=reference))


def test_validation_scores_over_the_classes_present() -> None:
    true = np.array([0, 0, 2, 2])
    probs = np.array([[0.9, 0, 0.1, 0], [0.6, 0, 0.4, 0], [0.3, 0, 0.7, 0], [0.45, 0, 0.55, 0]])
    s = validation_scores(true, probs.argmax(1), probs)
    assert s["val_auc"] == 1.0 and s["val_accuracy"] == 1.0 and s["val_macro_f1"] == 1.0
    assert s["val_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.7, 0.55])))
    worse = validation_scores(true, np.array([0, 2, 2, 0]), probs[[0, 2, 1, 3]])
    assert worse["val_auc"] == 0.5 and worse["val_accuracy"] == 0.5


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("planted")
    table = planted_inputs(tmp, {"train": {"normal": 6, "tb": 6}, "val": {"normal": 2, "tb": 2}, "test": {"normal": 3}})
    table.drop(columns="split").to_csv(tmp / "inputs.tsv", sep="\t", index=False)
    table[["image_id", "split"]].to_csv(tmp / "split.tsv", sep="\t", index=False)
    return tmp / "inputs.tsv", tmp / "split.tsv"


def test_a_frozen_trunk_with_frozen_statistics_leaves_the_trunk_as_it_started(
    tmp_path: Path, planted: tuple[Path, Path]
) -> None:
    s = ClassifierSettings(
        patch=64, batch_size=4, epochs=1, freeze_epochs=1, batch_norm="frozen", lr=1e-2, k_val=2, patience=None
    )
    train_classifier(
        inputs_path=str(planted[0]),
        split_path=str(planted[1]),
        settings=s,
        input_settings=InputSettings(size=96),
        files=TrainingFiles(
            model=tmp_path / "m.pt", metadata=tmp_path / "m.json", history=tmp_path / "h.tsv", resume_dir=tmp_path / "r"
        ),
        runtime=Runtime(device="cpu"),
    )
    seed_everything(s.seed)  # the training built its network right after this
    start = network("resnet18", 4).state_dict()
    trained = load_state(tmp_path / "m.pt")["state_dict"]
    trunk = [k for k in start if not k.startswith("fc.")]
    assert all(torch.equal(trained[k], start[k]) for k in trunk)  # weights and batch-norm statistics
    assert not torch.equal(trained["fc.weight"], start["fc.weight"])


def test_a_mobilenet_classifier_trains_predicts_and_explains(tmp_path: Path, planted: tuple[Path, Path]) -> None:
    from patchcxr.classification.explain import saliency_for_split
    from patchcxr.classification.predict import load_classifier, predict_split
    from patchcxr.classification.sanity import randomisation_test

    s = ClassifierSettings(backbone="mobilenet_v2", patch=64, batch_size=4, epochs=1, k_val=2, patience=None)
    md = train_classifier(
        inputs_path=str(planted[0]),
        split_path=str(planted[1]),
        settings=s,
        input_settings=InputSettings(size=96),
        files=TrainingFiles(
            model=tmp_path / "m.pt", metadata=tmp_path / "m.json", history=tmp_path / "h.tsv", resume_dir=tmp_path / "r"
        ),
        runtime=Runtime(device="cpu"),
        weights={"route": "none"},
    )
    assert md["initialisation"] == {"backbone": "mobilenet_v2", "route": "none", "file": "", "sha256": ""}
    assert md["config"]["classifier"]["backbone"] == "mobilenet_v2"
    clf = load_classifier(tmp_path / "m.pt", "cpu")  # the backbone comes from the file
    assert clf.settings.backbone == "mobilenet_v2" and clf.initialisation["route"] == "none"
    assert clf.model.get_submodule("classifier.1").out_features == 4
    pred = predict_split(tmp_path / "m.pt", planted[0], planted[1], k=4, runtime=Runtime(device="cpu"))
    assert len(pred) == 3 and set(pred["pred_hard"]) <= {"normal", "bacterial", "tb", "viral_covid19"}
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("image_id\tformat\timage_path\n")
    maps = saliency_for_split(
        tmp_path / "m.pt",
        planted[0],
        planted[1],
        manifest,
        out_dir=tmp_path / "maps",
        k=6,
        target="normal",
        max_images=2,
    )
    assert len(maps) == 2 and all((tmp_path / "maps" / f"{i}.npy").is_file() for i in maps["image_id"])
    shared = saliency_for_split(
        tmp_path / "m.pt",
        planted[0],
        planted[1],
        manifest,
        out_dir=tmp_path / "shared",
        k=6,
        target="normal",
        max_images=1,
        mode="shared_trunk",
    )
    assert len(shared) == 1
    spec = BACKBONES["mobilenet_v2"]
    cascade = randomisation_test(tmp_path / "m.pt", planted[0], planted[1], target="normal", max_images=1, k=4)
    relu = cascade[cascade["map"] == "relu"]
    # the head, then down to the stem (7 stages), then each stage alone
    assert list(relu["block"]) == [spec.head_layer, *["+".join(s) for s in spec.stages] * 2]
    assert set(cascade["map"]) == {"relu", "abs"} and list(relu["depth"])[:2] == [1, 2]
