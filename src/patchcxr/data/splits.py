"""Leak-free splits, written as artefacts.

Classification (method.md §2.5): train/val/test 0.7/0.1/0.2 as in the paper, but
**grouped by patient** (the paper split by image, so several films of one Cohen patient
could fall on both sides) and **stratified by class**. Segmentation (§2.2): JSRT/SCR
``floor(0.8 n)`` train (197 of 247) and the rest test, as the official code; the
validation part used for model selection is carved out of the *training* part, never out
of the test part (the official code's checkpoint-selection set overlapped its test set).

Both are seeded and deterministic: the same cohort and seed give the same files.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from patchcxr.io import write_tsv

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class LeakageError(AssertionError):
    """A patient or an image (sha256) appears in more than one split."""


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


#: classification roles of a source (config ``splits.classification.sources``)
CLASSIFICATION_ROLES = ("split", "train", "test")


def _split_by_class(cohort: pd.DataFrame, fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """patient → split: within each class (a patient's main class), patients shuffled
    (seeded) and taken greedily into test, then val, until each holds its share of the
    class's images; the rest train (:func:`classification_split`)."""
    sizes = cohort.groupby("patient_id").size()
    main_label = (
        cohort.groupby(["patient_id", "label5"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["patient_id", "n", "label5"], ascending=[True, False, True])
        .drop_duplicates("patient_id")
        .set_index("patient_id")["label5"]
    )
    assign: dict[str, str] = {}
    for label in sorted(main_label.unique()):
        patients = sorted(main_label.index[main_label == label])
        order = [patients[i] for i in _rng(seed, label).permutation(len(patients))]
        total = int(sizes[patients].sum())
        remaining = list(order)
        for split in ("test", "val"):
            target = fractions[split] * total
            taken = 0
            chosen = []
            for p in list(remaining):
                if abs(taken + sizes[p] - target) < abs(taken - target):
                    chosen.append(p)
                    taken += int(sizes[p])
            if not chosen and len(patients) >= 3 and fractions[split] > 0 and len(remaining) > 1:
                chosen = [remaining[0]]
            for p in chosen:
                assign[p] = split
                remaining.remove(p)
        for p in remaining:
            assign[p] = "train"
    return assign


def classification_split(
    cohort: pd.DataFrame,
    fractions: Mapping[str, float],
    seed: int,
    roles: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Assign every cohort image to train/val/test, whole patients at a time.

    Each patient belongs to the class of most of its images. Within a class, patients are
    shuffled (seeded) and taken greedily into test, then val, until each holds the
    requested share of that class's *images*; the rest is train. A class with three or
    more patients gets at least one in each split.

    Per-source ``roles`` make external validation a configuration: a source with role
    ``test`` is held out whole (every patient in test: the model never sees its hospital),
    one with role ``train`` gives only training and validation patients (train : val in
    the ratio of the fractions), and ``split`` (the default of every source) is split as
    above. The split as a whole then mixes internal and external test films; their
    ``source`` tells them apart in every per-source table.

    Args:
        cohort: columns ``image_id``, ``patient_id``, ``label5``, ``source`` (others are
            carried; ``source`` is needed only with ``roles``).
        fractions: ``{"train": .7, "val": .1, "test": .2}``; must sum to 1.
        seed: the split seed.
        roles: source → one of :data:`CLASSIFICATION_ROLES`; sources not named: ``split``.
    """
    if not math.isclose(sum(fractions[s] for s in SPLITS), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must sum to 1, got {dict(fractions)}")
    roles = dict(roles or {})
    for source, role in roles.items():
        if role not in CLASSIFICATION_ROLES:
            raise ValueError(f"classification role of {source!r} must be one of {CLASSIFICATION_ROLES}, got {role!r}")
    role_of = cohort["source"].map(lambda s: roles.get(s, "split")) if roles else pd.Series("split", cohort.index)
    # a patient in two sources (two renditions of one film) must not get two roles
    mixed = role_of.groupby(cohort["patient_id"]).nunique()
    if (mixed > 1).any():
        raise ValueError(f"patients in sources of different classification roles: {list(mixed.index[mixed > 1][:3])}")
    assign = _split_by_class(cohort[role_of == "split"], fractions, seed)
    training = fractions["train"] + fractions["val"]
    if (role_of == "train").any():
        if training <= 0:
            raise ValueError("a source with classification role 'train' needs train + val fractions above 0")
        inner = {"train": fractions["train"] / training, "val": fractions["val"] / training, "test": 0.0}
        assign |= _split_by_class(cohort[role_of == "train"], inner, seed)
    assign |= dict.fromkeys(cohort.loc[role_of == "test", "patient_id"], "test")
    out = cohort.assign(split=cohort["patient_id"].map(assign))
    return out.sort_values("image_id", kind="stable").reset_index(drop=True)


#: columns of the leave-one-source-out plan (:func:`leave_one_source_out`)
EXTERNAL_PLAN_COLUMNS = ["source", "held_out", "n_images", "n_patients", "classes", "reason"]


def leave_one_source_out(
    cohort: pd.DataFrame, fractions: Mapping[str, float], seed: int, *, labels: str
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """External validation by leaving one source out at a time.

    A source is held out when at least one other source remains and the others hold every
    class (``labels``: the classifier's scheme) the source holds: a model trained on them
    can then be asked every question the source poses. For each held-out source the split
    puts its patients in ``test`` and splits the others' patients into train and val (in the
    ratio of ``fractions``; the internal test share goes to training, as no test film is
    drawn from them).

    Returns the plan (:data:`EXTERNAL_PLAN_COLUMNS`: every cohort source, whether it is held
    out, and why not when it is not) and the split of each held-out source.
    """
    plan, splits = [], {}
    sources = sorted(cohort["source"].astype(str).unique())
    for source in sources:
        mine = cohort[cohort["source"] == source]
        # a patient of the held-out source in another source too (two renditions) stays out
        # of training: none of its films may teach the model what it is tested on
        others = cohort[(cohort["source"] != source) & ~cohort["patient_id"].isin(mine["patient_id"])]
        classes = sorted(set(mine[labels].astype(str)) - {""})
        missing = sorted(set(classes) - set(others[labels].astype(str)))
        reason = (
            "the only source of the cohort"
            if others.empty
            else f"no other source holds {', '.join(missing)}"
            if missing
            else ""
        )
        plan.append(
            {
                "source": source,
                "held_out": int(not reason),
                "n_images": len(mine),
                "n_patients": mine["patient_id"].nunique(),
                "classes": ",".join(classes),
                "reason": reason,
            }
        )
        if not reason:
            training = fractions["train"] + fractions["val"]
            inner = {"train": 1 - fractions["val"] / training, "val": fractions["val"] / training, "test": 0.0}
            rest = classification_split(others, inner, seed)
            splits[source] = pd.concat([rest, mine.assign(split="test")]).sort_values("image_id", kind="stable")
    return pd.DataFrame(plan, columns=EXTERNAL_PLAN_COLUMNS), splits


def grouped_folds(table: pd.DataFrame, k: int, *, by: str, seed: int) -> pd.DataFrame:
    """``k`` folds of the films of ``table`` (``image_id``, ``patient_id``, ``by``), grouped
    by patient and stratified by ``by``: within each value of ``by`` (a patient's first),
    the patients are shuffled (seeded) and dealt to the folds in turn, so each fold holds
    about 1/k of every stratum and a patient's films share one fold. Returns
    ``image_id, patient_id, fold`` (0 … k−1). Each fold needs a patient of every stratum
    that has k patients or more; a stratum of fewer leaves some folds without it."""
    if k < 2:
        raise ValueError(f"grouped folds need k >= 2, got {k}")
    first = table.sort_values("image_id").drop_duplicates("patient_id").set_index("patient_id")[by].astype(str)
    fold_of: dict[str, int] = {}
    offset = 0
    for value in sorted(first.unique()):
        patients = sorted(first.index[first == value])
        order = [patients[i] for i in _rng(seed, f"fold:{value}").permutation(len(patients))]
        # the deal starts where the last stratum stopped, so small strata fill different folds
        fold_of |= {p: (offset + i) % k for i, p in enumerate(order)}
        offset = (offset + len(order)) % k
    out = table[["image_id", "patient_id"]].assign(fold=table["patient_id"].map(fold_of).astype(int))
    return out.sort_values("image_id", kind="stable").reset_index(drop=True)


#: segmentation roles of a source (config ``splits.segmentation.sources``)
SEGMENTATION_ROLES = ("split", "train", "test")

#: what the segmentation split does with a patient the classifier sees (config
#: ``splits.segmentation.classified``): ``crossfit``: its tracing trains the segmenters of
#: the other folds (``splits.segmentation.folds``, patient-grouped and stratified by class)
#: and the segmenter of its own fold, which never saw it, masks and scores it (no classified
#: film is masked by a network trained on its own tracing, yet the classified source's
#: tracings teach the segmenter); ``held_out``: segmenter test, whatever its source's role
#: (the same protection, with none of the classified films' tracings learnt); ``follow``:
#: the patient keeps its classification split (classifier test films are segmenter test
#: films; its training films keep near-tracing masks); ``ignore``: the source's role
#: decides (the paper's design: a classified film may be masked by a network that learnt
#: its tracing, a mask-quality difference tied to the sources with tracings, hence to their
#: classes)
CLASSIFIED_POLICIES = ("crossfit", "held_out", "follow", "ignore")

#: the ``fold`` of a film no cross-fitted segmenter holds out (every segmenter may train on
#: it by its split; the first segmenter scores it when it is a test film)
NO_FOLD = -1


def segmenter_count(classified: str, folds: int) -> int:
    """Segmenters per training run: ``folds`` under ``crossfit``, else one."""
    return int(folds) if classified == "crossfit" else 1


def segmentation_runs(seed: int, count: int) -> list[str]:
    """The run labels of one segmentation training seed (the ``seed_<label>`` folders):
    ``"407"`` for one segmenter, ``"407-f0"``, ``"407-f1"``, … for cross-fitted ones."""
    return [str(int(seed))] if count == 1 else [f"{int(seed)}-f{i}" for i in range(count)]


def parse_segmentation_run(label: str) -> tuple[int, int]:
    """``(seed, fold)`` of a run label of :func:`segmentation_runs` (fold 0 for ``"407"``)."""
    seed, _, fold = str(label).partition("-f")
    if not seed.isdigit() or (fold and not fold.isdigit()) or (_ and not fold):
        raise ValueError(f"segmentation run {label!r} is not <seed> or <seed>-f<fold>")
    return int(seed), int(fold or 0)


def fold_view(split: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The segmentation split as segmenter ``fold`` sees it: the films of its fold are its
    test films; every other film keeps its split. With no cross-fitting (every ``fold``
    :data:`NO_FOLD`) the split itself."""
    return split.assign(split=split["split"].where(_folds(split) != int(fold), "test"))


def _folds(split: pd.DataFrame) -> pd.Series:
    """Each film's cross-fitting fold (:data:`NO_FOLD` for a split written without folds)."""
    return split["fold"].astype(int) if "fold" in split else pd.Series(NO_FOLD, index=split.index)


def segmenter_test_ids(split: pd.DataFrame, fold: int) -> set[str]:
    """The films segmenter ``fold`` scores: the films of its fold and, for the first
    segmenter, the test films no fold holds (each test film is scored once per seed)."""
    view, folds = fold_view(split, fold), _folds(split)
    mine = (folds == int(fold)) | ((folds == NO_FOLD) & (int(fold) == 0))
    return set(view.loc[mine & (view["split"] == "test"), "image_id"])


def segmentation_split(
    masked: pd.DataFrame,
    roles: Mapping[str, str],
    train_fraction: float,
    val_fraction: float,
    *,
    seed: int,
    classification: pd.DataFrame | None = None,
    classified: str = "held_out",
    folds: int = 2,
) -> pd.DataFrame:
    """Train/val/test for segmentation, per source, and each film's cross-fitting fold.

    Args:
        masked: manifest rows of images with lung masks (``image_id``, ``source``,
            ``patient_id``).
        roles: source → ``"split"`` (train/val/test), ``"test"`` (held out entirely, e.g.
            Montgomery for the paper's cross-database evaluation) or ``"train"``
            (train/val only).
        train_fraction: share of patients for training (paper: ``floor(0.8·247) = 197``).
        val_fraction: share of the training patients kept for model selection.
        seed: the split seed (the official code shuffled with 407).
        classification: the classification split (``patient_id``, ``split``): its
            patients are the classified ones of ``classified``.
        classified: :data:`CLASSIFIED_POLICIES`; a classified patient is one of
            ``classification`` (any of its splits). ``crossfit``, ``held_out`` and
            ``follow`` act before the sources' roles; ``ignore`` leaves every patient to its
            source's role.
        folds: the cross-fitting folds of ``crossfit`` (:func:`mask_folds`).

    Returns:
        ``image_id, source, patient_id, split, fold``: ``fold`` is the cross-fitted
        segmenter that holds the film out (:data:`NO_FOLD` where none does); a film with a
        fold has the split ``train`` or ``val`` it takes in the other folds' segmenters
        (:func:`fold_view`).
    """
    for source, role in roles.items():
        if role not in SEGMENTATION_ROLES:
            hint = " (now splits.segmentation.classified: follow)" if role == "classification" else ""
            raise ValueError(f"segmentation role of {source!r} must be one of {SEGMENTATION_ROLES}, got {role!r}{hint}")
    if classified not in CLASSIFIED_POLICIES:
        raise ValueError(f"splits.segmentation.classified must be one of {CLASSIFIED_POLICIES}, got {classified!r}")
    part = masked[masked["source"].isin(list(roles))]
    # roles act on patients, not files: two renditions of one patient (Montgomery JPEG and
    # 512² PNG) land in the split the first of them got; classified patients go first, then
    # held-out sources
    split_of: dict[str, str] = {}
    fold_of: dict[str, int] = {}
    if classified != "ignore":
        if classification is None:
            raise ValueError(f"splits.segmentation.classified: {classified} needs the classification split")
        follow = {str(p): str(s) for p, s in zip(classification["patient_id"], classification["split"], strict=True)}
        mine = sorted({str(p) for p in part["patient_id"]} & set(follow))
        if classified == "crossfit":
            fold_of = _patient_folds(mask_folds(classification, classified, folds, seed=seed))
            missing = [p for p in mine if p not in fold_of]
            if missing:
                raise ValueError(f"{len(missing)} classified patient(s) without a mask fold, e.g. {missing[:3]}")
            # within each fold and class the same share validates, so every fold's segmenter
            # selects its epoch on a like share of the other folds (traced patients only)
            first = (
                classification.assign(patient_id=classification["patient_id"].astype(str))
                .sort_values("image_id")
                .drop_duplicates("patient_id")
                .set_index("patient_id")["label5"]
                .astype(str)
            )
            for (fold, label), group in pd.DataFrame(
                {"patient": mine, "fold": [fold_of[p] for p in mine], "label": [first[p] for p in mine]}
            ).groupby(["fold", "label"], sort=True):
                patients = sorted(group["patient"])
                order = [patients[i] for i in _rng(seed, f"crossfit:{fold}:{label}").permutation(len(patients))]
                n_val = math.floor(val_fraction * len(order))
                split_of |= {p: "val" if i < n_val else "train" for i, p in enumerate(order)}
        else:
            split_of |= {p: "test" if classified == "held_out" else follow[p] for p in mine}
    rank = {"test": 1, "train": 2, "split": 3}
    for source, role in sorted(roles.items(), key=lambda kv: (rank[kv[1]], kv[0])):
        patients = sorted({str(p) for p in part.loc[part["source"] == source, "patient_id"]} - set(split_of))
        free = [patients[i] for i in _rng(seed, source).permutation(len(patients))]
        if role == "test":
            split_of |= dict.fromkeys(free, "test")
            continue
        n_train = len(free) if role == "train" else math.floor(train_fraction * len(free))
        n_val = math.floor(val_fraction * n_train)
        for i, p in enumerate(free):
            split_of[p] = "val" if i < n_val else "train" if i < n_train else "test"
    patient = part["patient_id"].astype(str)
    out = part.assign(split=patient.map(split_of), fold=patient.map(fold_of).fillna(NO_FOLD).astype(int))[
        ["image_id", "source", "patient_id", "split", "fold"]
    ]
    for fold in range(segmenter_count(classified, folds)):
        if classified != "ignore" and len(out) and not fold_view(out, fold)["split"].isin(["train", "val"]).any():
            raise ValueError(
                f"the segmentation split leaves no film to train on: all {len(out)} masked films are held out "
                f"(splits.segmentation.classified: {classified} and the sources' roles {dict(roles)}); "
                "add tracings of films the classifier does not see"
            )
    return out.sort_values("image_id", kind="stable").reset_index(drop=True)


def mask_folds(classification: pd.DataFrame, classified: str, folds: int, *, seed: int) -> pd.DataFrame:
    """The segmenter that masks each classified film (``image_id, patient_id, fold``):
    under ``crossfit`` its patient's fold of ``folds``, grouped by patient and stratified by
    class (:func:`grouped_folds` on ``label5``), traced or not, so no fold's masks differ
    from another's by class mix; otherwise 0, the one segmenter."""
    if classified == "crossfit" and int(folds) < 2:
        raise ValueError(f"splits.segmentation.folds must be at least 2 for crossfit, got {folds}")
    count = segmenter_count(classified, folds)
    if count == 1:
        return classification[["image_id", "patient_id"]].assign(fold=0).sort_values("image_id").reset_index(drop=True)
    return grouped_folds(classification, count, by="label5", seed=seed)


def _patient_folds(folds: pd.DataFrame) -> dict[str, int]:
    return {str(p): int(f) for p, f in zip(folds["patient_id"], folds["fold"], strict=True)}


def check_disjoint(split: pd.DataFrame, manifest: pd.DataFrame) -> None:
    """Raise :class:`LeakageError` if a patient or a pixel hash crosses splits."""
    joined = split.merge(manifest[["image_id", "sha256"]], on="image_id", how="left", suffixes=("", "_m"))
    for key in ("patient_id", "sha256"):
        spread = joined.groupby(key)["split"].nunique()
        leaked = spread[spread > 1]
        if len(leaked):
            raise LeakageError(f"{len(leaked)} {key} value(s) in several splits, e.g. {leaked.index[:3].tolist()}")


def write_splits(
    cohort: pd.DataFrame,
    manifest: pd.DataFrame,
    cfg: Mapping[str, Any],
    classification_path: Path | str,
    *,
    segmentation_path: Path | str,
    mask_folds_path: Path | str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both split files and the mask folds (:func:`mask_folds`) from the ``splits``
    config; refuses to write a leaking split (checked in each cross-fitted segmenter's
    view)."""
    seed = int(cfg["seed"])
    cls_cfg = cfg["classification"]
    cls = classification_split(cohort, cls_cfg, seed, roles=cls_cfg.get("sources"))
    seg_cfg = cfg["segmentation"]
    masked = manifest[manifest["has_lung_mask"] == "1"]
    seg = segmentation_split(
        masked,
        seg_cfg["sources"],
        seg_cfg["train_fraction"],
        seg_cfg["val_fraction"],
        seed=seed,
        classification=cls,
        classified=seg_cfg["classified"],
        folds=int(seg_cfg["folds"]),
    )
    folds = mask_folds(cls, seg_cfg["classified"], int(seg_cfg["folds"]), seed=seed)
    check_disjoint(cls, manifest)
    for fold in range(segmenter_count(seg_cfg["classified"], int(seg_cfg["folds"]))):
        check_disjoint(fold_view(seg, fold), manifest)
    cols = ["image_id", "patient_id", "label5", "label4", "split"]
    write_tsv(classification_path, cls[cols])
    write_tsv(segmentation_path, seg)
    write_tsv(mask_folds_path, folds)
    if len(folds):
        log.info("mask folds: %s", folds.groupby("fold").size().to_dict())
    for name, df in (("classification", cls), ("segmentation", seg)):
        log.info("%s split: %s", name, df.groupby("split").size().to_dict())
    return cls, seg
