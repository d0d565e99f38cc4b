"""The confound audit's verdict (:mod:`patchcxr.audit`): the class × source table with the
source-only rule and the purity gate, each probe's state (reads the source, shown not to,
inconclusive), the three-state verdict with its reason, the summary files, and the whole
audit in one call."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from patchcxr.audit.probes import PROBE_VIEWS, probe_source, probe_table
from patchcxr.classification.settings import ClassifierSettings, InputSettings
from patchcxr.io import atomic_write_text, read_tsv, write_tsv
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime
from patchcxr.stats import adjust_p

log = logging.getLogger(__name__)

READS, SHOWN_NOT, INCONCLUSIVE, ONE_SOURCE = "reads the source", "shown not to", "inconclusive", "one source"
CONFOUNDED, NOT_CONFOUNDED = "confounded", "not confounded"


def class_source_table(cohort: pd.DataFrame, labels: str = "label4") -> pd.DataFrame:
    """Films per class and source, with each cell's share of its class and, per class, its
    main source, the share of the class that source holds (``main_share``), and the
    *source-only rule* (each film given its source's main class): its recall of the class
    (``source_recall``: the share of the class's films whose source's main class it is) and
    its precision (``source_precision``: of the films it calls the class, the share that are)."""
    counts = cohort.groupby([labels, "source"]).size().rename("n").reset_index()
    counts = counts.rename(columns={labels: "class"})
    totals = counts.groupby("class")["n"].transform("sum")
    counts["share_of_class"] = counts["n"] / totals
    # the source-only rule: each source's main class (ties: the first class by name)
    source_main = counts.sort_values(["source", "n", "class"], ascending=[True, False, True]).drop_duplicates("source")
    rule = dict(zip(source_main["source"], source_main["class"], strict=True))
    named = counts.assign(named=counts["source"].map(rule))
    hits = named[named["named"] == named["class"]].groupby("class")["n"].sum()
    called = named.groupby("named")["n"].sum()
    counts["source_recall"] = counts["class"].map(hits).fillna(0) / totals
    counts["source_precision"] = counts["class"].map(hits).fillna(0) / counts["class"].map(called).replace(0, np.nan)
    main = counts.sort_values(["class", "n", "source"], ascending=[True, False, True]).drop_duplicates("class")
    counts = counts.merge(
        main[["class", "source", "share_of_class"]].rename(
            columns={"source": "main_source", "share_of_class": "main_share"}
        ),
        on="class",
    )
    return counts.sort_values(["class", "source"]).reset_index(drop=True)


def cramers_v(table: pd.DataFrame) -> float:
    """Cramér's V of class and source from :func:`class_source_table` (0: independent, 1:
    either determines the other); NaN with one class or one source."""
    m = table.pivot_table(index="class", columns="source", values="n", aggfunc="sum", fill_value=0).to_numpy(float)
    k = min(m.shape) - 1
    if k < 1 or m.sum() == 0:
        return float("nan")
    expected = m.sum(1, keepdims=True) * m.sum(0, keepdims=True) / m.sum()
    chi2 = float(((m - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    return float(np.sqrt(chi2 / (m.sum() * k)))


def probe_states(probes: pd.DataFrame, *, alpha: float, equivalence: float) -> pd.DataFrame:
    """Each probe's state with its reason (columns ``p_holm``, ``state``, ``reason``,
    ``reads_source``): *reads the source* when its permutation p, Holm-adjusted across the
    probes, is below ``alpha``; *shown not to* when the upper end of its balanced-accuracy
    interval lies below chance + ``equivalence``; *inconclusive* otherwise; *one source*
    when its films come from one source (nothing to tell apart)."""
    out = probes.copy()
    out["p_holm"] = adjust_p(out["p_permutation"].astype(float).tolist(), "holm")
    states, reasons = [], []
    for r in out.itertuples():
        chance, high = float(r.chance), float(r.balanced_accuracy_ci_high)
        if int(r.n_sources) < 2:
            states.append(ONE_SOURCE)
            reasons.append("the probe's films come from one source")
        elif float(r.p_holm) < alpha:
            states.append(READS)
            reasons.append(f"permutation p {float(r.p_holm):.3g} (Holm over {len(out)} probes) < {alpha:g}")
        elif high < chance + equivalence:
            states.append(SHOWN_NOT)
            reasons.append(f"balanced accuracy at most {high:.3f} < chance {chance:.3f} + {equivalence:g}")
        else:
            states.append(INCONCLUSIVE)
            reasons.append(
                f"permutation p {float(r.p_holm):.3g} (Holm) and balanced accuracy up to {high:.3f} "
                f"(chance {chance:.3f} + {equivalence:g}) on {int(r.n)} films"
            )
    out["state"], out["reason"] = states, reasons
    out["reads_source"] = (out["state"] == READS).astype(int)
    return out


def verdict(
    probes: pd.DataFrame, table: pd.DataFrame, *, alpha: float, equivalence: float, purity: float
) -> dict[str, Any]:
    """Whether the class labels are confounded with the source, in three states with the
    reason (module docstring), and the figures it rests on. ``probes``: :func:`probe_states`'s
    table; ``table``: :func:`class_source_table`'s."""
    v = cramers_v(table)
    classes = table.drop_duplicates("class")
    one_source = classes["main_share"] >= purity
    named = (classes["source_recall"] >= purity) & (classes["source_precision"].fillna(0) >= purity)
    tied = classes[one_source | named]
    tied_names = sorted(str(c) for c in tied["class"])
    reading = probes[probes["state"] == READS]
    views = sorted(set(reading["view"]))
    informative = probes[probes["state"] != ONE_SOURCE]
    all_shown_not = len(informative) > 0 and bool((informative["state"] == SHOWN_NOT).all())

    def rule(r: pd.Series) -> str:
        if not np.isfinite(float(r["source_precision"])):
            return "the source-only rule never names it"
        return f"source-only rule recall {r['source_recall']:.2f}, precision {r['source_precision']:.2f}"

    def ties() -> str:
        return "; ".join(
            f"{r['class']} from {r['main_source']} ({r['main_share']:.0%} of the class; {rule(r)})"
            for _, r in tied.iterrows()
        )

    sources = sorted(str(s) for s in table["source"].unique())
    if len(classes) < 2:
        state, reason = NOT_CONFOUNDED, "one class: there is no class for the source to stand in for"
        tied_names, tied = [], tied.iloc[0:0]
    elif len(sources) < 2:
        # nothing to test, which is not a finding: confounds inside the one recorded source
        # (Cohen's collection gathers many hospitals) are beyond this audit
        state = INCONCLUSIVE
        reason = (
            f"one recorded source ({', '.join(sources)}): the audit has no source to test; "
            "confounds within it (hospitals, devices, views) are not tested"
        )
        tied_names, tied = [], tied.iloc[0:0]
    elif not tied_names:
        state = NOT_CONFOUNDED
        reason = (
            f"no class is tied to its sources (no class has {purity:.0%} of its films from one source, "
            f"and the source-only rule neither recalls nor names any class at {purity:g})"
        )
    elif views:
        state = CONFOUNDED
        reason = f"{ties()}; the source is read from {', '.join(views)} (permutation, Holm, < {alpha:g})"
    elif all_shown_not:
        state = NOT_CONFOUNDED
        reason = f"{ties()}; every probe's balanced accuracy is shown below chance + {equivalence:g}"
    else:
        state = INCONCLUSIVE
        open_views = sorted(set(informative[informative["state"] == INCONCLUSIVE]["view"]))
        reason = (
            f"{ties()}; no probe reads the source at {alpha:g}, and {', '.join(open_views)} cannot be shown "
            f"below chance + {equivalence:g} on these test films"
        )
    total = float(table["n"].sum())
    per_class = table.groupby("class")["n"].sum()
    # the source-only rule's hits, from the recall class_source_table gave each class
    rule_hits = float((classes.set_index("class")["source_recall"] * per_class).sum())
    return {
        "verdict": state,
        "reason": reason,
        "confounded": {CONFOUNDED: True, NOT_CONFOUNDED: False}.get(state),
        "classes_tied_to_source": tied_names,
        "class_tied_to_source": bool(tied_names),
        "views_reading_source": views,
        "input_carries_source": "lung" in views,
        "source_only_accuracy": rule_hits / total if total else float("nan"),
        "majority_accuracy": float(per_class.max() / total) if total else float("nan"),
        "cramers_v": v,
        "alpha": alpha,
        "equivalence": equivalence,
        "purity": purity,
        "main_source": {
            str(r["class"]): {"source": str(r["main_source"]), "share": float(r["main_share"])}
            for _, r in classes.iterrows()
        },
    }


def summarise(
    *,
    predictions: Mapping[tuple[str, str], Path | str],
    inputs_path: Path | str,
    cohort_path: Path | str,
    labels: str,
    n_boot: int,
    seed: int,
    n_perm: int,
    alpha: float,
    equivalence: float,
    purity: float,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The audit's tables from its probes' predictions (``(mode, view)`` → predictions.tsv):
    the class × source table of the classified films, the probe table (with each probe's
    state and reason, :func:`probe_states`) and the verdict."""
    inputs = read_tsv(inputs_path)
    cohort = read_tsv(cohort_path)
    table = class_source_table(cohort[cohort["image_id"].isin(inputs["image_id"])], labels)
    scored = probe_table(
        {key: read_tsv(path) for key, path in predictions.items()}, n_boot=n_boot, seed=seed, n_perm=n_perm
    )
    probes = probe_states(scored, alpha=alpha, equivalence=equivalence)
    return table, probes, verdict(probes, table, alpha=alpha, equivalence=equivalence, purity=purity)


def write_summary(
    table: pd.DataFrame, probes: pd.DataFrame, result: Mapping[str, Any], out: Mapping[str, Path | str]
) -> None:
    """The audit's files: ``out["class_source"]``, ``out["probes"]`` (TSV) and
    ``out["verdict"]`` (JSON)."""
    write_tsv(out["class_source"], table)
    write_tsv(out["probes"], probes)

    def finite(value: Any) -> Any:  # JSON has no NaN: an undefined figure is null
        if isinstance(value, Mapping):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [finite(v) for v in value]
        return None if isinstance(value, float) and not np.isfinite(value) else value

    atomic_write_text(out["verdict"], json.dumps(finite(result), indent=2, sort_keys=True) + "\n")


def audit(
    *,
    inputs_path: Path | str,
    manifest_path: Path | str,
    cohort_path: Path | str,
    split_path: Path | str,
    settings: Mapping[str, ClassifierSettings],
    input_settings: InputSettings,
    out_dir: Path | str,
    views: Sequence[str] = PROBE_VIEWS,
    k: int,
    folds: int,
    n_boot: int,
    n_perm: int,
    alpha: float,
    equivalence: float,
    purity: float,
    runtime: Runtime = DEFAULT_RUNTIME,
    weights: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The whole audit in one call (the workflow runs its parts as jobs: one
    :func:`probe_source` per mode and view, then :func:`summarise`): the class × source
    table, one probe per classifier mode (``settings``: mode → its training settings) and
    view under ``out_dir/<mode>/<view>/``, and the verdict."""
    out_dir = Path(out_dir)
    predictions = {}
    for view in views:
        for mode, s in settings.items():
            where = out_dir / mode / view
            probe_source(
                inputs_path=inputs_path,
                manifest_path=manifest_path,
                split_path=split_path,
                view=view,
                settings=s,
                input_settings=input_settings,
                out_dir=where,
                k=k,
                folds=folds,
                runtime=runtime,
                weights=weights,
            )
            predictions[(mode, view)] = where / "predictions.tsv"
    first = next(iter(settings.values()), None)
    return summarise(
        predictions=predictions,
        inputs_path=inputs_path,
        cohort_path=cohort_path,
        labels=first.labels if first else "label4",
        n_boot=n_boot,
        seed=first.seed if first else 0,
        n_perm=n_perm,
        alpha=alpha,
        equivalence=equivalence,
        purity=purity,
    )
