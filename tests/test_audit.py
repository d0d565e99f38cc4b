"""Ground truth for the confound audit (patchcxr.audit): two synthetic NLM sources rendered
alike (same size, same exposure) that differ only in what the test plants.

* planted: every normal film is Montgomery, every TB film Shenzhen, and Shenzhen films carry
  a burnt-in marker outside the lung. The probe must read the source from outside the lung
  almost perfectly and the audit must call the labels confounded.
* independent: both sources hold normal and TB films alike and no artefact. The probe must
  not read the source and the audit must not call the labels confounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from patchcxr.audit.verdict import audit, class_source_table, cramers_v
from patchcxr.classification.data import build_inputs
from patchcxr.classification.settings import ClassifierSettings, InputSettings
from patchcxr.data.splits import classification_split
from patchcxr.io import read_png, read_tsv, write_tsv
from patchcxr.models.state import Runtime
from patchcxr.synthetic.exposure import ARTEFACTS, plant_artefact

SIZE = 128
PROBE = ClassifierSettings(
    mode="global", patch=64, batch_size=16, epochs=16, lr=2e-3, weight_decay=0.0, l1=0.0, k_val=1, seed=3, draws=64
)
INPUTS = InputSettings(size=SIZE, mask_source="truth_where_available")
#: the audit's settings of config/config.yaml (permutations fewer, for time)
VERDICT = {"n_perm": 199, "alpha": 0.05, "equivalence": 0.1, "purity": 0.8}


def _cohort(root: Path, test_config: dict[str, Any], planted: bool) -> None:
    """manifest, cohort, split and cached inputs (ground-truth masks) under ``root``."""
    from patchcxr.synthetic import generate_source
    from tests.conftest import merge
    from tests.helpers import run_data_stage

    shape = {"height": 256, "width": 210}
    if planted:
        counts = {"montgomery": {"normal": 24, "tb": 0}, "shenzhen": {"normal": 0, "tb": 24}}
        artefact = {"kind": "marker", "size": 0.1}
    else:
        counts = {"montgomery": {"normal": 12, "tb": 12}, "shenzhen": {"normal": 12, "tb": 12}}
        artefact = {"kind": "none"}
    params = merge(
        test_config["synthetic"],
        {
            "montgomery": {**shape, "counts": counts["montgomery"]},
            "shenzhen": {
                **shape,
                "counts": counts["shenzhen"],
                "mask_fraction": 1.0,
                "exposure_as": "montgomery",
                "artefact": artefact,
            },
        },
    )
    for source in ("montgomery", "shenzhen"):
        generate_source(source, params, root / source, root / "gt" / source)
    sources = {s: {"format": s, "path": str(root / s)} for s in ("montgomery", "shenzhen")}
    manifest, _ = run_data_stage(sources, test_config["labels"], root / "data")
    cohort = manifest[manifest["label4"] != ""].copy()
    split = classification_split(cohort, {"train": 0.6, "val": 0.1, "test": 0.3}, seed=1)
    write_tsv(root / "split.tsv", split[["image_id", "patient_id", "label5", "label4", "split"]])
    write_tsv(root / "cohort.tsv", cohort)
    masks = manifest[["image_id", "mask_path"]]  # every film has its tracing: no segmenter needed
    write_tsv(root / "inputs.tsv", build_inputs(manifest, cohort, masks, root / "inputs", settings=INPUTS))


def _audit(
    root: Path, test_config: dict[str, Any], planted: bool, views: tuple[str, ...] = ("outside", "lung"), folds: int = 1
) -> tuple[pd.DataFrame, dict[str, Any]]:
    _cohort(root, test_config, planted)
    _, probes, v = audit(
        inputs_path=root / "inputs.tsv",
        manifest_path=root / "data" / "manifest.tsv",
        cohort_path=root / "cohort.tsv",
        split_path=root / "split.tsv",
        settings={"global": PROBE},
        input_settings=INPUTS,
        out_dir=root / "audit",
        views=views,
        k=1,
        folds=folds,
        n_boot=200,
        **VERDICT,
        runtime=Runtime(device="cpu"),
    )
    return probes, v


def test_the_marker_is_planted_outside_the_lung_only() -> None:
    from patchcxr.synthetic.phantom import render, sample_spec

    r = render(sample_spec(np.random.default_rng(0), "normal"), 256, 210)
    gray = np.full((256, 210), 100, np.uint8)
    marked = plant_artefact(gray, {"kind": "marker", "size": 0.1})
    changed = marked != gray
    assert changed.sum() > 0 and not (changed & (r.labels >= 2)).any()
    assert (plant_artefact(gray, {"kind": "none"}) == gray).all() and ARTEFACTS[0] == "none"
    with pytest.raises(ValueError, match="artefact kind"):
        plant_artefact(gray, {"kind": "watermark"})


def test_cramers_v_is_one_for_a_class_given_by_its_source_and_zero_when_independent() -> None:
    tied = pd.DataFrame({"label4": ["normal"] * 6 + ["tb"] * 6, "source": ["a"] * 6 + ["b"] * 6})
    free = pd.DataFrame({"label4": ["normal", "tb"] * 6, "source": ["a"] * 6 + ["b"] * 6})
    assert cramers_v(class_source_table(tied)) == pytest.approx(1.0)
    assert cramers_v(class_source_table(free)) == pytest.approx(0.0)
    assert set(class_source_table(tied)["main_share"]) == {1.0}


@pytest.mark.slow
def test_the_audit_flags_a_planted_source_artefact(tmp_path: Path, test_config: dict[str, Any]) -> None:
    # the outside view alone (the lung view reads the source only through the disease tied to it)
    # three folds over the whole cohort: every film scored once, by a probe that never saw it
    probes, v = _audit(tmp_path, test_config, planted=True, views=("outside",), folds=3)
    outside = probes.set_index("view").loc["outside"]
    # the marker is outside the lung: the probe of the film outside the lung reads it
    assert outside["balanced_accuracy"] >= 0.95 and outside["n"] == 48, probes
    pred = read_tsv(tmp_path / "audit" / "global" / "outside" / "predictions.tsv")
    assert sorted(pred["image_id"]) == sorted(read_tsv(tmp_path / "inputs.tsv")["image_id"])
    assert set(pred["fold"]) == {"0", "1", "2"} and pred.groupby("patient_id")["fold"].nunique().max() == 1
    assert v["verdict"] == "confounded" and v["confounded"] and "outside" in v["views_reading_source"], v
    assert v["classes_tied_to_source"] == ["normal", "tb"] and "read from outside" in v["reason"]
    assert v["cramers_v"] == pytest.approx(1.0) and v["main_source"]["tb"] == {"source": "shenzhen", "share": 1.0}


@pytest.mark.slow
def test_the_audit_does_not_flag_independent_class_and_source(tmp_path: Path, test_config: dict[str, Any]) -> None:
    probes, v = _audit(tmp_path, test_config, planted=False)
    # both sources hold both classes alike: no class is tied to its sources, whatever the probes
    assert v["verdict"] == "not confounded" and v["confounded"] is False and v["cramers_v"] < 0.1, (probes, v)
    assert v["classes_tied_to_source"] == [] and "no class is tied" in v["reason"]
    # sources rendered alike: no view reads the source far above chance
    assert (probes["balanced_accuracy_ci_low"] <= probes["chance"] + 0.2).all(), probes
    assert (probes["n"] >= 12).all()
    # the outside view blacks out the lung and draws its patches outside it
    assert read_png(next((tmp_path / "audit" / "global" / "outside" / "view").rglob("*.outside.png"))).any()


def test_the_summary_scores_known_probe_predictions_and_the_paper_table_calls_them(tmp_path: Path) -> None:
    # 20 test films of 10 patients: half Montgomery (all normal), half Shenzhen (all TB)
    import json

    from PIL import Image

    from patchcxr.audit.verdict import summarise, write_summary
    from patchcxr.figures import plot_audit
    from patchcxr.paper.tables import headline_metrics, source_probe_table

    films = pd.DataFrame(
        {
            "image_id": [f"f{i}" for i in range(20)],
            "patient_id": [f"p{i // 2}" for i in range(20)],
            "source": ["montgomery"] * 10 + ["shenzhen"] * 10,
            "label4": ["normal"] * 10 + ["tb"] * 10,
        }
    )
    write_tsv(tmp_path / "inputs.tsv", films[["image_id", "patient_id", "source"]])
    write_tsv(tmp_path / "cohort.tsv", films)
    truth = films.assign(true=films["source"])
    write_tsv(tmp_path / "read.tsv", truth.assign(pred_hard=truth["source"]))  # every source right
    write_tsv(tmp_path / "blind.tsv", truth.assign(pred_hard="montgomery"))  # one answer for all
    table, probes, v = summarise(
        predictions={("local", "lung"): tmp_path / "read.tsv", ("local", "mask"): tmp_path / "blind.tsv"},
        inputs_path=tmp_path / "inputs.tsv",
        cohort_path=tmp_path / "cohort.tsv",
        labels="label4",
        n_boot=50,
        seed=0,
        **VERDICT,
    )
    rows = probes.set_index("view")
    assert rows.loc["lung", "balanced_accuracy"] == rows.loc["lung", "balanced_accuracy_ci_low"] == 1.0
    assert rows.loc["mask", "accuracy"] == 0.5 and rows.loc["mask", "balanced_accuracy"] == 0.5
    assert (probes["n"] == 20).all() and (probes["n_patients"] == 10).all() and (probes["chance"] == 0.5).all()
    assert v["confounded"] and v["views_reading_source"] == ["lung"] and v["input_carries_source"]
    assert v["cramers_v"] == pytest.approx(1.0) and v["main_source"]["tb"] == {"source": "shenzhen", "share": 1.0}
    # every source right: the permutation test reads it; one answer for all: shown not to
    assert list(rows["state"]) == ["reads the source", "shown not to"] and rows.loc["lung", "p_holm"] < 0.05
    assert rows.loc["lung", "adjusted_balanced_accuracy"] == 1.0 and rows.loc["mask", "adjusted_balanced_accuracy"] == 0
    assert v["source_only_accuracy"] == 1.0 and v["majority_accuracy"] == 0.5
    paper = source_probe_table(probes, v).set_index("view")
    assert list(paper["state"]) == ["reads the source", "shown not to"] and set(paper["verdict"]) == {"confounded"}
    assert paper.loc["lung", "balanced_accuracy"] == "1.000 [1.000, 1.000]"
    out = {k: tmp_path / f"{k}.{ext}" for k, ext in (("class_source", "tsv"), ("probes", "tsv"), ("verdict", "json"))}
    write_summary(table, probes, v, out)
    assert json.loads(out["verdict"].read_text())["confounded"] is True
    assert headline_metrics(None, None, v)["audit"] == {
        "verdict": "confounded",
        "confounded": True,
        "input_carries_source": True,
        "cramers_v": 1.0,
    }
    plot_audit(out["class_source"], out["probes"], tmp_path / "audit.png")
    assert Image.open(tmp_path / "audit.png").size[0] > 500
    # one class only: no association can be measured, V is NaN (null in the JSON), nothing is confounded
    write_tsv(tmp_path / "cohort.tsv", films.assign(label4="normal"))
    table, probes, v = summarise(
        predictions={("local", "lung"): tmp_path / "read.tsv"},
        inputs_path=tmp_path / "inputs.tsv",
        cohort_path=tmp_path / "cohort.tsv",
        labels="label4",
        n_boot=50,
        seed=0,
        **VERDICT,
    )
    write_summary(table, probes, v, out)
    # (the probe still reads the source: there is no class for it to stand in for)
    assert v["verdict"] == "not confounded" and "one class" in v["reason"]
    assert json.loads(out["verdict"].read_text())["cramers_v"] is None


def test_a_probe_of_one_source_trains_nothing_and_scores_at_chance(tmp_path: Path) -> None:
    from patchcxr.audit.probes import probe_table, run_probe

    films = pd.DataFrame(
        {"image_id": [f"f{i}" for i in range(6)], "patient_id": [f"p{i}" for i in range(6)], "source": "shenzhen"}
    )
    write_tsv(tmp_path / "split.tsv", films.assign(split=["train"] * 3 + ["test"] * 3))
    pred = run_probe(
        inputs=films,
        split_path=tmp_path / "split.tsv",
        settings=PROBE,
        input_settings=INPUTS,
        out_dir=tmp_path / "probe",
        k=1,
        folds=1,
        runtime=Runtime(device="cpu"),
    )
    assert list(pred["image_id"]) == ["f3", "f4", "f5"] and not (tmp_path / "probe" / "model.pt").exists()
    row = probe_table({("global", "lung"): pred}, n_boot=20, seed=0).iloc[0]
    assert row["n_sources"] == 1 and row["chance"] == 1.0 and row["balanced_accuracy_ci_low"] == 1.0
    # two classes of one source (Shenzhen normal and TB): each class "comes from one source",
    # yet the source tells them apart no better than the majority class; the audit has
    # nothing to test, and says so rather than "not confounded" or a list of no views
    from patchcxr.audit.verdict import probe_states, verdict

    table = class_source_table(pd.DataFrame({"label4": ["normal"] * 5 + ["tb"] * 6, "source": "shenzhen"}))
    probes = probe_table({("global", "outside"): pred}, n_boot=20, seed=0)
    v = verdict(probe_states(probes, alpha=0.05, equivalence=0.1), table, alpha=0.05, equivalence=0.1, purity=0.8)
    assert v["verdict"] == "inconclusive" and v["confounded"] is None, v
    assert v["reason"].startswith("one recorded source (shenzhen): the audit has no source to test")
    assert v["classes_tied_to_source"] == [] and v["source_only_accuracy"] == v["majority_accuracy"] == 6 / 11


def test_a_probe_of_one_source_builds_no_view(tmp_path: Path) -> None:
    from patchcxr.audit.probes import probe_source

    inputs = pd.DataFrame(
        {
            "image_id": [f"f{i}" for i in range(4)],
            "input_path": [f"missing/{i}.png" for i in range(4)],  # never opened
            "lung_path": [f"missing/{i}.lung.png" for i in range(4)],
            "mask_source": "predicted",
            "label5": ["normal", "tb"] * 2,
            "label4": ["normal", "tb"] * 2,
            "patient_id": [f"p{i}" for i in range(4)],
            "source": "shenzhen",
            "paediatric": "0",
        }
    )
    write_tsv(tmp_path / "inputs.tsv", inputs)
    write_tsv(tmp_path / "manifest.tsv", inputs[["image_id"]].assign(image_path="missing", format="shenzhen"))
    write_tsv(
        tmp_path / "split.tsv", inputs[["image_id", "patient_id"]].assign(split=["train", "train", "test", "test"])
    )
    pred = probe_source(
        inputs_path=tmp_path / "inputs.tsv",
        manifest_path=tmp_path / "manifest.tsv",
        split_path=tmp_path / "split.tsv",
        view="outside",
        settings=PROBE,
        input_settings=INPUTS,
        out_dir=tmp_path / "probe",
        k=1,
        folds=1,
        runtime=Runtime(device="cpu"),
    )
    assert list(pred["image_id"]) == ["f2", "f3"] and (pred["pred_hard"] == "shenzhen").all()
    assert not any((tmp_path / "probe" / "view").iterdir())  # no film read, no view image written


def test_the_purity_gate_catches_a_class_from_one_source_among_mixed_ones() -> None:
    # COVID-19 wholly from one source that also holds the other classes, which are mixed
    # over every source: Cramér's V is 0.22 (the old gate, V >= 0.5, never fired) and the
    # source-only rule misses it (that source's main class is normal); the purity gate ties it
    from patchcxr.audit.verdict import probe_states, verdict

    rows = [("covid", "cohen")] * 20
    for source in ("a", "b", "c", "cohen"):
        rows += [("normal", source)] * 30 + [("bacterial", source)] * 27 + [("viral", source)] * 25
    table = class_source_table(pd.DataFrame(rows, columns=["label4", "source"]))
    assert cramers_v(table) == pytest.approx(0.2214, abs=1e-3)
    per_class = table.drop_duplicates("class").set_index("class")
    assert per_class.loc["covid", "main_share"] == 1.0 and per_class.loc["covid", "source_recall"] == 0.0
    reading = pd.DataFrame(
        [{"mode": "global", "view": "outside", "n": 101, "n_sources": 4, "chance": 0.25, "p_permutation": 0.001,
          "balanced_accuracy_ci_high": 0.9}]
    )  # fmt: skip
    v = verdict(probe_states(reading, alpha=0.05, equivalence=0.1), table, alpha=0.05, equivalence=0.1, purity=0.8)
    assert v["verdict"] == "confounded" and v["classes_tied_to_source"] == ["covid"]
    assert "covid from cohen (100% of the class; the source-only rule never names it)" in v["reason"]


def _probe_predictions(rng: np.random.Generator, n_per_source: int, sources: int, recall: float) -> pd.DataFrame:
    """A probe's test predictions: each film names its source with probability ``recall``,
    else one of the other sources at random; one film per patient."""
    true = np.repeat(np.arange(sources), n_per_source)
    right = rng.random(len(true)) < recall
    other = (true + rng.integers(1, sources, len(true))) % sources
    pred = np.where(right, true, other)
    ids = [f"p{i}" for i in range(len(true))]
    return pd.DataFrame({"patient_id": ids, "true": true.astype(str), "pred_hard": pred.astype(str)})


def test_the_probe_test_detects_a_0_6_recall_probe_and_holds_its_level_on_a_null() -> None:
    # the paper-sized test split (about 101 films, 4 sources): a probe naming each source at
    # 0.6 is detected >= 80 % of the time (the old bar, lower bound > chance + 0.2: 51 %); a
    # probe at chance (recall 0.25 of 4 sources) is called at most about 5 % of the time
    from patchcxr.audit.probes import probe_scores

    rng = np.random.default_rng(0)

    def detected(recall: float, runs: int) -> float:
        p = [
            probe_scores(_probe_predictions(rng, 25, 4, recall), n_boot=1, seed=k, n_perm=199)["p_permutation"]
            for k in range(runs)
        ]
        return float(np.mean(np.array(p) < 0.05))

    assert detected(0.6, 60) >= 0.8
    assert detected(0.25, 200) <= 0.08


def test_the_verdict_has_three_states_each_with_its_reason() -> None:
    from patchcxr.audit.verdict import probe_states, verdict

    cohort = pd.DataFrame({"label4": ["normal"] * 10 + ["tb"] * 10, "source": ["a"] * 10 + ["b"] * 10})
    table = class_source_table(cohort)

    def call(p: float, high: float) -> dict[str, Any]:
        probes = pd.DataFrame(
            [{"mode": "global", "view": "lung", "n": 20, "n_sources": 2, "chance": 0.5, "p_permutation": p,
              "balanced_accuracy_ci_high": high}]
        )  # fmt: skip
        states = probe_states(probes, alpha=0.05, equivalence=0.1)
        return verdict(states, table, alpha=0.05, equivalence=0.1, purity=0.8)

    reads, shown_not, open_ = call(0.001, 0.9), call(0.6, 0.55), call(0.2, 0.75)
    assert (reads["verdict"], reads["confounded"]) == ("confounded", True)
    assert (shown_not["verdict"], shown_not["confounded"]) == ("not confounded", False)
    assert "every probe's balanced accuracy is shown below chance + 0.1" in shown_not["reason"]
    assert (open_["verdict"], open_["confounded"]) == ("inconclusive", None)
    assert "lung cannot be shown below chance + 0.1" in open_["reason"] and "normal from a" in open_["reason"]


def _within(rate_b: float, seed: int, n: int = 30) -> pd.DataFrame:
    """Test predictions of a 4-class model: normal films from sources a and b (n each),
    recalled at 0.8 in a and ``rate_b`` in b (misses called TB); TB films from c only."""
    from patchcxr.audit.within import within_class_table
    from patchcxr.data.labels import LABEL4

    rng = np.random.default_rng(seed)
    rows = []
    for source, rate in (("a", 0.8), ("b", rate_b)):
        rows += [(f"{source}{i}", "normal", source, "normal" if rng.uniform() < rate else "tb") for i in range(n)]
    rows += [(f"c{i}", "tb", "c", "tb") for i in range(10)]
    pred = pd.DataFrame(rows, columns=["patient_id", "true", "source", "pred_hard"])
    return within_class_table(pred, LABEL4, model="local", n_perm=199, seed=seed, min_patients=10)


def test_the_within_class_test_finds_a_source_that_changes_the_call_and_holds_its_level() -> None:
    t = _within(0.2, seed=0).set_index(["class", "source"])
    assert ("tb", "c") not in t.index  # a class from one source: nothing to compare
    assert t.loc[("normal", "a"), "n"] == 30 and 0.6 < t.loc[("normal", "a"), "recall"] <= 1.0
    assert t.loc[("normal", "b"), "predicted_tb"] == pytest.approx(1 - t.loc[("normal", "b"), "recall"])
    assert t.loc[("normal", "all"), "p_holm"] < 0.01 and t.loc[("all classes", "all"), "p_permutation"] < 0.01
    # the same recall in both sources: the test rejects at about its level (30 nulls)
    nulls = [_within(0.8, seed=s).set_index("class").loc["all classes", "p_permutation"] for s in range(30)]
    assert np.mean(np.array(nulls) < 0.05) <= 0.15 and np.mean(nulls) > 0.3
