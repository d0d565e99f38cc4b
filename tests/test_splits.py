"""Splits: patient-grouped, stratified, seeded, and checked for leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from patchcxr.data.splits import LeakageError, check_disjoint, classification_split, segmentation_split

FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def cohort(seed: int = 0) -> pd.DataFrame:
    """Five classes, 1-4 films per patient (as in the Cohen collection)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, n_patients in (("normal", 60), ("bacterial", 25), ("viral", 12), ("tb", 30), ("covid19", 50)):
        for p in range(n_patients):
            for k in range(int(rng.integers(1, 5))):
                rows.append({"image_id": f"{label}/{p}-{k}", "patient_id": f"{label}:{p}", "label5": label})
    return pd.DataFrame(rows)


def test_no_patient_crosses_and_classes_keep_their_shares() -> None:
    c = cohort()
    s = classification_split(c, FRACTIONS, seed=407)
    assert s.groupby("patient_id")["split"].nunique().max() == 1
    for label, part in s.groupby("label5"):
        share = part["split"].value_counts(normalize=True)
        for split, target in FRACTIONS.items():
            assert share.get(split, 0) == pytest.approx(target, abs=0.08), (label, split)


def test_same_seed_same_split_other_seed_other_split() -> None:
    c = cohort()
    a, b = classification_split(c, FRACTIONS, 1), classification_split(c, FRACTIONS, 1)
    pd.testing.assert_frame_equal(a, b)
    assert not classification_split(c, FRACTIONS, 2)["split"].equals(a["split"])


def test_a_patient_with_films_of_two_classes_stays_whole() -> None:
    c = pd.concat([cohort(), pd.DataFrame([{"image_id": "x/1", "patient_id": "covid19:0", "label5": "normal"}])])
    s = classification_split(c, FRACTIONS, 3)
    assert s.loc[s["patient_id"] == "covid19:0", "split"].nunique() == 1


def test_fractions_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        classification_split(cohort(), {"train": 0.7, "val": 0.2, "test": 0.2}, 0)


def test_per_source_roles_hold_a_source_out_whole_and_keep_another_for_training() -> None:
    # sources by class: normal and TB from "a" and "b", the rest from "c"
    c = cohort()
    c["source"] = np.select(
        [c["label5"].isin(["normal", "tb"]) & (c.index % 2 == 0), c["label5"].isin(["normal", "tb"])], ["a", "b"], "c"
    )
    c["patient_id"] = c["source"] + ":" + c["patient_id"]
    plain = classification_split(c, FRACTIONS, 5)
    s = classification_split(c, FRACTIONS, 5, roles={"a": "test", "b": "train"})
    by_source = s.groupby("source")["split"].agg(set)
    assert by_source["a"] == {"test"}  # held out whole: the model never sees source a
    assert by_source["b"] == {"train", "val"}  # training and model selection only
    assert by_source["c"] == {"train", "val", "test"}
    b = s[s["source"] == "b"]["split"].value_counts(normalize=True)
    assert b["val"] == pytest.approx(0.1 / 0.8, abs=0.06)  # train : val as 0.7 : 0.1
    # a source not named is split as without roles, by its own patients
    assert s.groupby("patient_id")["split"].nunique().max() == 1
    assert classification_split(c, FRACTIONS, 5, roles={}).equals(plain)
    with pytest.raises(ValueError, match="classification role of 'a'"):
        classification_split(c, FRACTIONS, 5, roles={"a": "external"})
    twice = pd.concat([c, c[c["source"] == "a"].head(1).assign(image_id="b/copy", source="b")])
    with pytest.raises(ValueError, match="different classification roles"):
        classification_split(twice, FRACTIONS, 5, roles={"a": "test"})


def test_segmentation_split_reproduces_the_paper_sizes() -> None:
    jsrt = pd.DataFrame(
        {
            "image_id": [f"jsrt/J{i:03d}" for i in range(247)],
            "source": "jsrt",
            "patient_id": [f"jsrt:J{i:03d}" for i in range(247)],
        }
    )
    s = segmentation_split(jsrt, {"jsrt": "split"}, 0.8, 0.1, seed=407, classified="ignore")
    counts = s["split"].value_counts().to_dict()
    assert counts == {"train": 197 - 19, "val": 19, "test": 50}  # Table I: 197 train, 50 test


def test_renditions_of_one_patient_share_the_split() -> None:
    ids = [f"MCUCXR_{i:04d}_0" for i in range(20)]
    rows = [
        {"image_id": f"{src}/{i}", "source": src, "patient_id": f"montgomery:{i}"}
        for src in ("mc", "mc512")
        for i in ids
    ]
    s = segmentation_split(pd.DataFrame(rows), {"mc": "split", "mc512": "split"}, 0.8, 0.1, seed=5, classified="ignore")
    assert s.groupby("patient_id")["split"].nunique().max() == 1
    held = segmentation_split(
        pd.DataFrame(rows), {"mc": "split", "mc512": "test"}, 0.8, 0.1, seed=5, classified="ignore"
    )
    assert (held["split"] == "test").all()  # a held-out rendition holds its patients out everywhere


def _shenzhen_and_jsrt() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """40 classified Shenzhen patients (half traced) and 10 traced JSRT patients the
    classifier does not see: the classification split, the masked films, the cohort."""
    cohort = pd.DataFrame(
        {
            "image_id": [f"sz/{i}" for i in range(40)],
            "patient_id": [f"shenzhen:{i}" for i in range(40)],
            "label5": ["normal"] * 20 + ["tb"] * 20,
        }
    )
    cls = classification_split(cohort, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=1)
    masked = cohort.iloc[::2].assign(source="sz")  # half the films have a lung mask
    jsrt = pd.DataFrame({"image_id": [f"j/{i}" for i in range(10)], "patient_id": [f"jsrt:{i}" for i in range(10)]})
    return cls, pd.concat([masked, jsrt.assign(source="jsrt")], ignore_index=True), cohort


def test_classified_patients_train_no_segmenter_unless_told() -> None:
    cls, masked, _ = _shenzhen_and_jsrt()
    roles = {"sz": "split", "jsrt": "split"}
    seg = segmentation_split(masked, roles, 0.8, 0.1, seed=1, classification=cls, classified="held_out")
    sz = seg[seg["source"] == "sz"]
    assert len(sz) == 20 and (sz["split"] == "test").all()  # every classified film: segmenter test
    assert seg.loc[seg["source"] == "jsrt", "split"].value_counts().to_dict() == {"train": 8, "test": 2}
    # follow: each classified patient keeps its classification split
    seg = segmentation_split(masked, roles, 0.8, 0.1, seed=1, classification=cls, classified="follow")
    by_patient = dict(zip(cls["patient_id"], cls["split"], strict=True))
    sz = seg[seg["source"] == "sz"]
    assert (sz["split"] == sz["patient_id"].map(by_patient)).all() and set(sz["split"]) == {"train", "val", "test"}
    # ignore: the source's role (the paper's design): classified films train the segmenter
    seg = segmentation_split(masked, roles, 0.8, 0.1, seed=1, classified="ignore")
    assert seg.loc[seg["source"] == "sz", "split"].value_counts().to_dict() == {"train": 15, "test": 4, "val": 1}
    with pytest.raises(ValueError, match="needs the classification split"):
        segmentation_split(masked, roles, 0.8, 0.1, seed=1)
    with pytest.raises(ValueError, match="classified: follow"):
        segmentation_split(masked, {"sz": "classification"}, 0.8, 0.1, seed=1, classification=cls)
    with pytest.raises(ValueError, match="no film to train on"):
        segmentation_split(masked[masked["source"] == "sz"], {"sz": "split"}, 0.8, 0.1, seed=1, classification=cls)


def test_crossfit_masks_each_classified_film_by_a_segmenter_that_never_learnt_its_tracing() -> None:
    from patchcxr.data.splits import (
        NO_FOLD,
        fold_view,
        mask_folds,
        parse_segmentation_run,
        segmentation_runs,
        segmenter_test_ids,
    )

    cls, masked, _ = _shenzhen_and_jsrt()
    roles = {"sz": "split", "jsrt": "split"}
    seg = segmentation_split(masked, roles, 0.8, 0.25, seed=1, classification=cls, classified="crossfit", folds=2)
    folds = mask_folds(cls, "crossfit", 2, seed=1)
    # every classified film, traced or not, has one segmenter; patients whole; classes dealt evenly
    assert len(folds) == 40 and set(folds["fold"]) == {0, 1}
    assert folds.groupby("patient_id")["fold"].nunique().max() == 1
    by_class = folds.merge(cls[["image_id", "label5"]], on="image_id").groupby(["label5", "fold"]).size()
    assert by_class.to_dict() == {("normal", 0): 10, ("normal", 1): 10, ("tb", 0): 10, ("tb", 1): 10}
    sz, jsrt = seg[seg["source"] == "sz"], seg[seg["source"] == "jsrt"]
    fold_of = dict(zip(folds["image_id"], folds["fold"], strict=True))
    assert (sz["fold"] == sz["image_id"].map(fold_of)).all()  # the split's folds are the masks' folds
    assert (jsrt["fold"] == NO_FOLD).all() and jsrt["split"].value_counts().to_dict() == {
        "train": 6,
        "test": 2,
        "val": 2,
    }
    # classified films train or validate the other fold's segmenter; within each fold and
    # class, floor(25 %) of the traced patients validate (like validation sets for each fold)
    assert set(sz["split"]) == {"train", "val"}
    groups = sz.merge(cls[["image_id", "label5"]], on="image_id").groupby(["fold", "label5"])["split"]
    assert all((g == "val").sum() == (len(g) * 25) // 100 for _, g in groups), groups.value_counts()
    assert (sz["split"] == "val").sum() >= 4
    for fold in (0, 1):
        view = fold_view(seg, fold)
        mine = view["fold"] == fold
        assert (view.loc[mine, "split"] == "test").all() and 0 < mine.sum() < 20
        # the films this segmenter masks (mask_folds) are none of its training or validation films
        masks = set(folds.loc[folds["fold"] == fold, "image_id"])
        assert not masks & set(view.loc[view["split"].isin(["train", "val"]), "image_id"])
        # and it learns from the other fold's tracings and the unclassified ones
        assert set(view.loc[view["split"] == "train", "source"]) == {"sz", "jsrt"}
    # every test film is scored once per seed: its fold's segmenter, or the first for JSRT's
    scored = [segmenter_test_ids(seg, f) for f in (0, 1)]
    assert not scored[0] & scored[1]
    assert scored[0] | scored[1] == set(sz["image_id"]) | set(jsrt.loc[jsrt["split"] == "test", "image_id"])
    assert set(jsrt.loc[jsrt["split"] == "test", "image_id"]) <= scored[0]
    # a patient's films share a fold, whatever the id's type (integer ids: the same split)
    two = pd.concat([masked, masked[masked["source"] == "sz"].assign(image_id=lambda d: d["image_id"] + "b")])
    cls_two = pd.concat([cls, cls.assign(image_id=cls["image_id"] + "b")])
    seg_two = segmentation_split(two, roles, 0.8, 0.25, seed=1, classification=cls_two, classified="crossfit")
    assert seg_two.groupby("patient_id")[["fold", "split"]].nunique().max().tolist() == [1, 1]
    as_int = {p: i for i, p in enumerate(sorted(set(masked["patient_id"]) | set(cls["patient_id"])))}
    seg_int = segmentation_split(
        masked.assign(patient_id=masked["patient_id"].map(as_int)),
        roles,
        0.8,
        0.25,
        seed=1,
        classification=cls.assign(patient_id=cls["patient_id"].map(as_int)),
        classified="crossfit",
    )
    # (before, integer ids missed their folds: every traced patient trained every network)
    assert (seg_int.loc[seg_int["source"] == "sz", "fold"] != NO_FOLD).all()
    assert set(seg_int.loc[seg_int["source"] == "sz", "split"]) == {"train", "val"}
    # the other policies: no folds; one segmenter masks every film
    held = segmentation_split(masked, roles, 0.8, 0.1, seed=1, classification=cls, classified="held_out")
    assert (held["fold"] == NO_FOLD).all() and fold_view(held, 0).equals(held)
    assert set(mask_folds(cls, "held_out", 2, seed=1)["fold"]) == {0}
    assert segmenter_test_ids(held, 0) == set(held.loc[held["split"] == "test", "image_id"])
    # run labels: the folders of one seed
    assert segmentation_runs(407, 1) == ["407"] and segmentation_runs(407, 2) == ["407-f0", "407-f1"]
    assert [parse_segmentation_run(r) for r in ("407", "407-f1")] == [(407, 0), (407, 1)]
    for bad in ("407-f", "x-f1", "407-1"):
        with pytest.raises(ValueError, match="is not <seed>"):
            parse_segmentation_run(bad)
    with pytest.raises(ValueError, match="at least 2"):
        segmentation_split(masked, roles, 0.8, 0.1, seed=1, classification=cls, classified="crossfit", folds=1)


def test_check_disjoint_catches_patient_and_hash_leaks() -> None:
    manifest = pd.DataFrame({"image_id": ["a", "b", "c"], "sha256": ["1", "2", "1"]})
    ok = pd.DataFrame({"image_id": ["a", "b", "c"], "patient_id": ["p", "q", "r"], "split": ["train", "test", "train"]})
    check_disjoint(ok, manifest)
    with pytest.raises(LeakageError, match="patient_id"):
        check_disjoint(ok.assign(patient_id=["p", "p", "r"]), manifest)
    with pytest.raises(LeakageError, match="sha256"):
        check_disjoint(ok.assign(split=["train", "test", "test"]), manifest)


def test_leave_one_source_out_holds_out_each_source_the_others_cover() -> None:
    from patchcxr.data.splits import leave_one_source_out

    c = cohort()
    # a: normal + tb; b: normal + tb + bacterial; c: covid19 only (no other source has it)
    c["source"] = np.select(
        [c["label5"] == "covid19", c["label5"] == "bacterial", c.index % 2 == 0], ["c", "b", "a"], "b"
    )
    c["patient_id"] = c["source"] + ":" + c["patient_id"]
    shared = c[c["source"] == "a"].head(1).assign(image_id="b/rendition", source="b")  # one patient in a and b
    plan, splits = leave_one_source_out(pd.concat([c, shared]), FRACTIONS, 7, labels="label5")
    plan = plan.set_index("source")
    assert plan.loc["a", "held_out"] == 1 and plan.loc["a", "reason"] == ""
    assert plan.loc["b", "held_out"] == 0 and "bacterial" in plan.loc["b", "reason"]
    assert plan.loc["c", "held_out"] == 0 and plan.loc["c", "reason"] == "no other source holds covid19"
    assert set(splits) == {"a"}
    a = splits["a"]
    assert set(a.loc[a["source"] == "a", "split"]) == {"test"} and set(a.loc[a["source"] != "a", "split"]) == {
        "train",
        "val",
    }
    assert "b/rendition" not in set(a["image_id"])  # its patient is tested in a: never trained on
    assert a.groupby("patient_id")["split"].nunique().max() == 1
    alone, none = leave_one_source_out(c[c["source"] == "a"], FRACTIONS, 7, labels="label5")
    assert alone.iloc[0]["reason"] == "the only source of the cohort" and none == {}


def test_grouped_folds_keep_patients_whole_and_deal_every_source_to_every_fold() -> None:
    from patchcxr.data.splits import grouped_folds

    films = pd.DataFrame(
        {
            "image_id": [f"{s}/{i}/{j}" for s, n in (("a", 30), ("b", 7)) for i in range(n) for j in range(2)],
            "patient_id": [f"{s}{i}" for s, n in (("a", 30), ("b", 7)) for i in range(n) for _ in range(2)],
            "source": [s for s, n in (("a", 30), ("b", 7)) for _ in range(n) for _ in range(2)],
        }
    )
    folds = grouped_folds(films, 5, by="source", seed=3).merge(films[["image_id", "source"]], on="image_id")
    assert folds.groupby("patient_id")["fold"].nunique().max() == 1  # a patient's films: one fold
    per = folds.drop_duplicates("patient_id").groupby(["source", "fold"]).size().unstack(fill_value=0)
    assert (per.loc["a"] == 6).all() and sorted(per.loc["b"]) == [1, 1, 1, 2, 2]  # dealt in turn
    assert grouped_folds(films, 5, by="source", seed=3).equals(grouped_folds(films, 5, by="source", seed=3))
    with pytest.raises(ValueError, match="k >= 2"):
        grouped_folds(films, 1, by="source", seed=3)
