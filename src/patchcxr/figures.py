"""Figures and overlays: every picture the package draws, from the workflow's tables or
from arrays (never from models).

Matplotlib runs headless (Agg); every ``plot_*`` function writes one file and returns
nothing; the ``*_overlay_png`` functions return PNG bytes for the stage that writes them.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from patchcxr.data.labels import DISPLAY_ORDER, LabelValue
from patchcxr.io import atomic_write_bytes, encode_png, read_tsv
from patchcxr.preprocess import resize_labels

#: resolution of every figure: print quality (a journal's minimum for line art is 300, for
#: halftones 200-300)
FIGURE_DPI = 200
#: below this many films a group is drawn as its points, not as a box (a box of 2 points
#: pretends quartiles it has not got); the workflow passes statistics.min_patients
MIN_BOX_N = 10


def _save(fig: plt.Figure, out: Path | str) -> None:
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format=Path(out).suffix.lstrip(".") or "png",
        dpi=FIGURE_DPI,
        bbox_inches="tight",
        metadata={"Software": None} if str(out).endswith(".png") else None,
    )
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())


def _groups(
    ax: plt.Axes,
    data: list[np.ndarray],
    labels: list[str],
    *,
    min_n: int,
    colours: list[str] | None = None,
    horizontal: bool = False,
) -> list[int]:
    """One group per position: a box plot with its points where the group has ``min_n``
    values or more, its points and a median bar alone below that; each label gets its n.
    Returns the indices of the groups drawn as boxes."""
    rng = np.random.default_rng(0)
    pos = np.arange(1, len(data) + 1)
    big = [i for i, d in enumerate(data) if len(d) >= min_n]
    if big:
        ax.boxplot(
            [data[i] for i in big],
            positions=pos[big],
            orientation="horizontal" if horizontal else "vertical",
            showfliers=False,
            widths=0.6,
            medianprops={"color": "black"},
        )
    for i, d in enumerate(data):
        jitter = pos[i] + rng.uniform(-0.15, 0.15, len(d))
        colour = colours[i] if colours else "tab:blue"
        x, y = (d, jitter) if horizontal else (jitter, d)
        ax.scatter(x, y, s=9, alpha=0.65, color=colour, zorder=3)
        if i not in big and len(d):
            m = float(np.median(d))
            across = [pos[i] - 0.3, pos[i] + 0.3]
            bx, by = ([m, m], across) if horizontal else (across, [m, m])
            ax.plot(bx, by, color="black", lw=1.5, zorder=4)
    ticks = [f"{label} (n={len(d)})" for label, d in zip(labels, data, strict=True)]
    if horizontal:
        ax.set_yticks(pos, ticks)
        ax.set_ylim(len(data) + 0.5, 0.5)
    else:
        ax.set_xticks(pos, ticks)
        ax.set_xlim(0.5, len(data) + 0.5)
    return big


def _below_min_note(data: list[np.ndarray], min_n: int) -> str:
    return f"; groups under n = {min_n}: points and median" if any(len(d) < min_n for d in data) else ""


def plot_segmentation_scores(scores_path: Path | str, out: Path | str, *, min_n: int = MIN_BOX_N) -> None:
    """Per-image Jaccard: one panel per held-out data set, one row per structure × model ×
    preprocessing (the paper's segmentation comparison, §4.5); a box where a group has
    ``min_n`` images or more, its points otherwise."""
    scores = read_tsv(scores_path, typed=True)
    datasets = sorted(scores["dataset"].unique()) or ["(none)"]
    keys = ["structure", "model", "preprocessing"]
    n_groups = max([len(scores[scores["dataset"] == d].groupby(keys)) for d in datasets])
    size = (5.2 * len(datasets), 1.2 + 0.32 * max(4, n_groups))
    fig, axes = plt.subplots(1, len(datasets), figsize=size, squeeze=False, layout="constrained")
    note = ""
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = scores[scores["dataset"] == dataset]
        groups = part.groupby(keys)["jaccard"]
        data = [g.to_numpy(float) for _, g in groups]
        _groups(ax, data, [f"{s} · {m}/{p}" for (s, m, p) in groups.groups], min_n=min_n, horizontal=True)
        note = note or _below_min_note(data, min_n)
        ax.set_title(f"{dataset}: n = {part['image_id'].nunique()} held-out images", fontsize=9)
        ax.set_xlabel("Jaccard index per image (0-1)")
        ax.set_xlim(0, 1)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Segmentation on held-out images{note}", fontsize=10)
    _save(fig, out)


#: one colour per class in display order; a merged class takes the colour of its last member
#: (viral_covid19 that of covid19)
CLASS_COLOURS = dict(
    zip(DISPLAY_ORDER, ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#c44e52", "#c44e52"], strict=True)
)


#: each biomarker's axis label, with its unit
FEATURE_UNITS = {
    "intensity_mean": "mean lung grey level (preprocessed, 0-255)",
    "intensity_std": "sd of lung grey level (preprocessed, 0-255)",
    "ctr": "cardiothoracic ratio (cardiac / thoracic width)",
    "intra_inter_ratio": "within- / between-patch variance of lung grey level",
    "lung_area_px": "lung area (pixels at the film's resolution)",
}


def _stars(p: float) -> str:
    if not p == p:  # NaN
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "ns"


def plot_feature_boxes(
    features_path: Path | str,
    tests_path: Path | str,
    out: Path | str,
    features: tuple[str, ...] = ("intensity_mean", "intensity_std", "ctr", "intra_inter_ratio"),
    *,
    reference: str = "covid19",
    label: str = "label5",
    min_n: int = MIN_BOX_N,
) -> None:
    """Per-class box plots with the points, and significance marks against ``reference``
    (Holm-adjusted Mann–Whitney over all images, from ``tests.tsv``) — the paper's marker
    figure (§7.1)."""
    df = read_tsv(features_path, typed=True)
    tests = read_tsv(tests_path, typed=True)
    tests = tests[(tests["scope"] == "all") & (tests["test"] == "mann-whitney")]
    classes = [c for c in DISPLAY_ORDER if c in set(df[label].dropna())]
    fig, axes = plt.subplots(1, len(features), figsize=(4.2 * len(features), 4.4), squeeze=False)
    note = ""
    for ax, feature in zip(axes[0], features, strict=True):
        data = [df.loc[df[label] == c, feature].dropna().to_numpy(float) for c in classes]
        _groups(ax, data, classes, min_n=min_n, colours=[CLASS_COLOURS[c] for c in classes])
        note = note or _below_min_note(data, min_n)
        for i, (c, values) in enumerate(zip(classes, data, strict=True), start=1):
            if c == reference or reference not in classes:
                continue
            hit = tests[
                (tests["feature"] == feature)
                & (tests["scope"] == "all")
                & (tests["test"] == "mann-whitney")
                & (
                    ((tests["group_a"] == c) & (tests["group_b"] == reference))
                    | ((tests["group_a"] == reference) & (tests["group_b"] == c))
                )
            ]
            if len(hit) and len(values):
                ax.annotate(
                    _stars(float(hit["p_adjusted"].iloc[0])),
                    (i, 1.0),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        ax.set_title(feature.replace("_", " "), pad=14)
        ax.set_ylabel(FEATURE_UNITS.get(feature, feature))
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"Lung biomarkers per class, n = {len(df)} films (marks: Holm-adjusted Mann-Whitney vs {reference}{note})",
        y=1.04,
        fontsize=10,
    )
    _save(fig, out)


def plot_ctr_scatter(features_path: Path | str, out: Path | str, label: str = "label5") -> None:
    """Cardiothoracic ratio against the standard deviation of lung intensity, per class."""
    df = read_tsv(features_path, typed=True)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for c in [c for c in DISPLAY_ORDER if c in set(df[label].dropna())]:
        part = df[df[label] == c]
        ax.scatter(
            part["ctr"], part["intensity_std"], s=14, alpha=0.7, label=f"{c} (n={len(part)})", color=CLASS_COLOURS[c]
        )
    ax.set_xlabel(FEATURE_UNITS["ctr"])
    ax.set_ylabel(FEATURE_UNITS["intensity_std"])
    ax.set_title(f"Cardiothoracic ratio and lung texture, n = {len(df)} films", fontsize=9)
    ax.legend(fontsize=8, title="class", title_fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, out)


def plot_lung_histograms(hist_path: Path | str, out: Path | str) -> None:
    """Lung-intensity distribution per source before and after the paper's preprocessing."""
    df = read_tsv(hist_path, typed=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, stage, title in zip(axes, ("before", "after"), ("min-max scaled", "equalised + gamma 0.5"), strict=True):
        for source, part in df[df["stage"] == stage].groupby("source"):
            centres = (part["bin_low"] + part["bin_high"]) / 2
            ax.plot(centres, part["density"], label=source, lw=1.2)
        ax.set_title(f"lung intensities, {title}", fontsize=9)
        ax.set_xlabel("grey level (0-255)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of lung pixels per bin")
    axes[1].legend(fontsize=7, title="source", title_fontsize=7)
    fig.suptitle("Lung-intensity distribution per source, before and after the paper's preprocessing", fontsize=10)
    _save(fig, out)


def plot_segmentation_examples(examples_path: Path | str, out: Path | str) -> None:
    """The paper's Fig. 3: one column per class, images with the predicted heart and lung
    contours (the images and masks named in ``examples.tsv``), a legend of the contours."""
    from matplotlib.lines import Line2D
    from PIL import Image

    df = read_tsv(examples_path, typed=True).fillna("")
    classes = [c for c in DISPLAY_ORDER if c in set(df["label5"])]
    per = max([len(df[df["label5"] == c]) for c in classes], default=1)
    fig, axes = plt.subplots(
        per,
        max(1, len(classes)),
        figsize=(2.6 * max(2, len(classes)), 2.8 * per + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.ravel():
        ax.axis("off")
    for col, c in enumerate(classes):
        for k, row in enumerate(df[df["label5"] == c].itertuples()):
            img = Image.open(row.image_path)
            scale = 512 / max(img.size)
            size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
            ax = axes[k, col]
            ax.imshow(np.asarray(img.convert("L").resize(size)), cmap="gray")
            if row.mask_path:
                lab = np.asarray(Image.open(row.mask_path).resize(size, Image.Resampling.NEAREST))
                for value, colour in ((1, "red"), (2, "lime"), (3, "deepskyblue")):
                    if (lab == value).any():
                        ax.contour(lab == value, levels=[0.5], colors=colour, linewidths=0.8)
            ax.set_title(f"{c}: {row.image_id.split('/', 1)[1][:18]}", fontsize=7)
    keys = [Line2D([], [], color=c, lw=1.5) for c in ("red", "lime", "deepskyblue")]
    fig.legend(
        keys, ["heart", "left lung", "right lung"], loc="outside lower center", ncol=3, fontsize=8, frameon=False
    )
    fig.suptitle(f"Predicted heart and lung contours: {len(df)} films, {len(classes)} classes", fontsize=10)
    _save(fig, out)


def plot_confusion(table_path: Path | str, out: Path | str, *, title: str = "") -> None:
    """Confusion matrix: colour = share of the true class, text = count (share); the title
    names the run (``title``: model and seed) and the films counted."""
    df = read_tsv(table_path, typed=True)
    names = list(dict.fromkeys(df["true"]))
    frac = df.pivot(index="true", columns="predicted", values="row_fraction").loc[names, names]
    count = df.pivot(index="true", columns="predicted", values="count").loc[names, names]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 1.2 * len(names) + 1.5))
    im = ax.imshow(frac.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            v = frac.iloc[i, j]
            ax.text(
                j,
                i,
                f"{int(count.iloc[i, j])}\n({v:.2f})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v > 0.6 else "black",
            )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title + ': ' if title else ''}test split, n = {int(count.to_numpy().sum())} films", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class (0-1)")
    _save(fig, out)


def plot_saliency(table_path: Path | str, out: Path | str, per_row: int = 5, *, title: str = "") -> None:
    """The paper's Fig. 9: probabilistic Grad-CAM overlays of the test images, with the
    ground-truth lesion boxes (synthetic data) in white and the map's peak within the lung
    as a cross (green: inside a lesion box, the pointing game's hit; red: a miss)."""
    from PIL import Image

    df = read_tsv(table_path)  # text: boxes and the hit column stay as written
    n = max(1, len(df))
    cols = min(per_row, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols + 1.0, 3.0 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, r in zip(axes.ravel(), df.itertuples(), strict=False):
        ax.imshow(np.asarray(Image.open(r.overlay).convert("RGB")))
        for box in filter(None, str(r.lesion_boxes).split(";")):
            top, left, bottom, right = (int(v) for v in box.split(","))
            ax.add_patch(
                plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, ec="white", lw=0.7)
            )
        hit = str(r.pointing_hit)
        colour = {"1": "lime", "0": "red"}.get(hit, "white")
        ax.plot(int(r.peak_col), int(r.peak_row), marker="+", ms=10, mew=1.8, color=colour)
        verdict = {"1": " · hit", "0": " · miss"}.get(hit, "")
        ax.set_title(f"{r.image_id.split('/', 1)[-1][:20]}\np={float(r.mean_probability):.2f}{verdict}", fontsize=7)
    if df.empty:
        axes[0, 0].text(0.5, 0.5, "no test image of the target class", ha="center", va="center")
    from matplotlib import cm, colors
    from matplotlib.lines import Line2D

    bar = fig.colorbar(
        cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap="jet"), ax=axes.ravel().tolist(), fraction=0.02, pad=0.02
    )
    bar.set_label("Grad-CAM saliency (share of the film's peak)")
    boxed = bool(df["lesion_boxes"].fillna("").astype(str).str.len().gt(0).any()) if len(df) else False
    keys, names = [Line2D([], [], color="white", marker="+", ls="", mew=1.8, mec="black")], ["peak of the map"]
    if boxed:
        keys = [
            Line2D([], [], color="white", marker="s", mfc="none", ls="", mec="black"),
            Line2D([], [], color="lime", marker="+", ls="", mew=1.8),
            Line2D([], [], color="red", marker="+", ls="", mew=1.8),
        ]
        names = ["lesion box (synthetic truth)", "peak inside a lesion", "peak outside"]
    fig.legend(keys, names, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle(
        f"{title + ': ' if title else ''}probabilistic Grad-CAM, n = {len(df)} test films "
        "(p: the vote's probability of the class)",
        fontsize=9,
    )
    _save(fig, out)


def plot_reliability(table_path: Path | str, out: Path | str, *, title: str = "") -> None:
    """Reliability diagram of the soft vote (``reliability.tsv``): accuracy against mean
    confidence per confidence bin, as it comes, temperature-scaled and prior-corrected then
    temperature-scaled, the diagonal being perfect calibration; the legend gives each
    curve's ECE (from the same bins) and films."""
    df = read_tsv(table_path, typed=True)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for (label, part), colour in zip(
        df.groupby("calibration", sort=False), ("tab:red", "tab:blue", "tab:green"), strict=False
    ):
        filled = part[part["n"] > 0]
        n = int(filled["n"].sum())
        ece = float((filled["n"] * (filled["confidence"] - filled["accuracy"]).abs()).sum() / n) if n else float("nan")
        ax.plot(
            filled["confidence"], filled["accuracy"], marker="o", color=colour, label=f"{label} (ECE {ece:.3f}, n {n})"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (soft-vote probability of the class chosen)")
    ax.set_ylabel("accuracy in the bin (share correct)")
    ax.set_title(f"{title + ': ' if title else ''}calibration on the test split", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, out)


def plot_audit(class_source_path: Path | str, probes_path: Path | str, out: Path | str) -> None:
    """The confound audit (:mod:`patchcxr.audit`): left, each class's share of films from
    each source (a class given by its source is one dark cell per row); right, each source
    probe's balanced accuracy with its patient-bootstrap interval against chance."""
    table = read_tsv(class_source_path, typed=True)
    probes = read_tsv(probes_path, typed=True)
    share = table.pivot_table(index="class", columns="source", values="share_of_class", fill_value=0.0)
    count = table.pivot_table(index="class", columns="source", values="n", fill_value=0)
    # constrained layout: the probes' labels must clear the colour bar of the left panel
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=(6.0 + 0.9 * max(1, share.shape[1]), 1.0 + 0.6 * max(3, share.shape[0], len(probes))),
        layout="constrained",
    )
    im = left.imshow(share.to_numpy(float), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            v = float(share.iloc[i, j])
            left.text(
                j,
                i,
                f"{int(count.iloc[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v > 0.6 else "black",
            )
    left.set_xticks(range(share.shape[1]), list(share.columns), rotation=45, ha="right")
    left.set_yticks(range(share.shape[0]), list(share.index))
    left.set_title("films per class and source", fontsize=9)
    fig.colorbar(im, ax=left, fraction=0.046, label="share of the class")
    names = [f"{r.mode} / {r.view}" for r in probes.itertuples()]
    y = np.arange(len(probes))
    mid = probes["balanced_accuracy"].to_numpy(float)
    lo = probes["balanced_accuracy_ci_low"].to_numpy(float)
    hi = probes["balanced_accuracy_ci_high"].to_numpy(float)
    right.errorbar(mid, y, xerr=[np.nan_to_num(mid - lo), np.nan_to_num(hi - mid)], fmt="o", color="tab:red", capsize=3)
    for yi, chance in zip(y, probes["chance"].to_numpy(float), strict=True):
        right.plot([chance, chance], [yi - 0.4, yi + 0.4], color="grey", lw=1)
    right.set_yticks(y, names)
    right.set_xlim(0, 1.02)
    right.set_ylim(len(probes) - 0.5, -0.5)
    right.set_xlabel("balanced accuracy of the source probe (grey: chance)")
    right.set_title("source read from each view (95 % patient interval)", fontsize=9)
    fig.suptitle(
        f"Confound audit: {int(count.to_numpy().sum())} films, {share.shape[0]} classes, {share.shape[1]} sources; "
        f"{len(probes)} source probes",
        fontsize=10,
    )
    _save(fig, out)


def plot_training_curves(histories: dict[str, Path | str], out: Path | str) -> None:
    """Training curves from each model's ``history.tsv``: the validation score used for model
    selection (segmentation: mean Jaccard; classifiers: macro-F1 of the K-patch vote) and the
    training loss, per epoch. Keys name the models (``segmentation/…``, ``classification/…``)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), layout="constrained")
    for name, path in sorted(histories.items()):
        h = read_tsv(path, typed=True)
        score = "val_mean_jaccard" if "val_mean_jaccard" in h.columns else "val_macro_f1"
        ax = axes[0] if score == "val_mean_jaccard" else axes[1]
        ax.plot(h["epoch"], h[score], label=name.split("/", 1)[-1], lw=1.2)
        axes[2].plot(h["epoch"], h["train_loss"], label=name, lw=1.0)
    axes[0].set(title="segmentation", xlabel="epoch", ylabel="validation mean Jaccard (0-1)")
    axes[1].set(title="classification", xlabel="epoch", ylabel="validation macro-F1 of the vote (0-1)")
    axes[2].set(title="training loss", xlabel="epoch", ylabel="loss (log scale)")
    axes[2].set_yscale("log")
    for ax in axes:
        if ax.lines:
            # below the panel: a legend inside covers the curves
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Training curves of {len(histories)} networks (first training seed)", fontsize=10)
    _save(fig, out)


def plot_progress(history_path: Path | str, out: Path | str, *, select_metric: str, title: str) -> None:
    """One training run's progress beside its ``history.tsv``: the training loss (and the
    validation loss where recorded) and the validation score that picks the kept epoch,
    per epoch, the kept epoch marked."""
    h = read_tsv(history_path, typed=True)
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    loss_ax.plot(h["epoch"], h["train_loss"], marker="o", ms=3, lw=1.2, label="training loss")
    if "val_loss" in h.columns:
        loss_ax.plot(h["epoch"], h["val_loss"], marker="o", ms=3, lw=1.2, label="validation loss")
    loss_ax.set(xlabel="epoch", ylabel="loss (the training objective)", title="loss")
    loss_ax.legend(fontsize=7)
    if select_metric in h.columns:
        scores = h[select_metric]
        best = int(scores.idxmin() if select_metric.endswith("loss") else scores.idxmax())
        score_ax.plot(h["epoch"], scores, marker="o", ms=3, lw=1.2, color="C2")
        score_ax.axvline(h["epoch"][best], color="grey", ls=":", lw=1, label=f"kept: epoch {int(h['epoch'][best])}")
        score_ax.legend(fontsize=7)
    score_ax.set(xlabel="epoch", ylabel=select_metric, title=f"{select_metric} (picks the kept epoch)")
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{title}: {len(h)} epochs", fontsize=9)
    _save(fig, out)


def mask_overlay_png(pixels: np.ndarray, labels: np.ndarray, size: int = 256) -> bytes:
    """A mask QC picture (PNG bytes), ``size`` pixels on its long side: the image in grey,
    heart red, left lung green, right lung blue."""
    from PIL import Image

    img = pixels.astype(np.float32)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1.0)
    scale = size / max(img.shape)
    shape = (max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale)))
    small = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize(shape[::-1], Image.Resampling.BILINEAR))
    lab = resize_labels(labels, shape)
    rgb = np.repeat(small[..., None], 3, axis=2).astype(np.float32)
    for value, colour in (
        (LabelValue.HEART, (255, 60, 60)),
        (LabelValue.LEFT_LUNG, (60, 220, 60)),
        (LabelValue.RIGHT_LUNG, (60, 120, 255)),
    ):
        m = lab == value
        rgb[m] = 0.6 * rgb[m] + 0.4 * np.array(colour)
    return encode_png(rgb.astype(np.uint8))


def saliency_overlay_png(img: np.ndarray, saliency: np.ndarray) -> bytes:
    """The input in grey with the map in a jet colour scale on top (as the official code),
    as PNG bytes (the workflow's saliency maps; ``patchcxr predict`` draws
    :func:`film_saliency_png`)."""
    from matplotlib import colormaps

    grey = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
    heat = saliency / max(float(saliency.max()), 1e-12)
    rgb = 0.55 * np.repeat(grey[..., None], 3, axis=2) + 0.45 * colormaps["jet"](heat)[..., :3]
    return encode_png((np.clip(rgb, 0, 1) * 255).astype(np.uint8))


#: the long side, in pixels, at which ``patchcxr predict``'s picture draws a film: about the
#: figure's own width at :data:`FIGURE_DPI` (more pixels would be resampled away, at a
#: memory cost that grows with the film)
FILM_DISPLAY_SIDE = 1400


def film_saliency_png(
    film: np.ndarray, saliency: np.ndarray, lung: np.ndarray, *, shape: tuple[int, int], title: str
) -> bytes:
    """``patchcxr predict``'s picture of one film (PNG bytes, :data:`FIGURE_DPI`): the whole
    preprocessed film in grey at its own geometry (``shape``: rows, columns; drawn at most
    :data:`FILM_DISPLAY_SIDE` on its long side), the saliency map in a jet scale over it
    (transparent where it is under 5 % of its peak), the white contour of the lung field the
    classifier's patches were drawn in, a colour bar of the map, and ``title`` (the class
    and its probability). Composed with numpy and Pillow, not matplotlib: a call per film
    keeps no memory behind (a matplotlib figure per film grew a 200-film run by 0.7 GB)."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageFont
    from scipy.ndimage import binary_dilation, binary_erosion

    scale = min(1.0, FILM_DISPLAY_SIDE / max(shape))
    w, h = max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale))

    def resized(a: np.ndarray, nearest: bool = False) -> np.ndarray:
        mode = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
        return np.asarray(Image.fromarray(a.astype(np.float32)).resize((w, h), mode))

    grey = resized(film)
    grey = (grey - grey.min()) / max(float(grey.max() - grey.min()), 1e-6)
    heat = resized(saliency)
    heat = heat / max(float(heat.max()), 1e-12)
    jet = colormaps["jet"]
    alpha = np.where(heat >= 0.05, 0.45, 0.0).astype(np.float32)[..., None]
    rgb = (1 - alpha) * grey[..., None] + alpha * (jet(heat, bytes=True)[..., :3].astype(np.float32) / 255)
    field = resized(lung.astype(np.float32), nearest=True) > 0.5
    edge = binary_dilation(field & ~binary_erosion(field), iterations=1)
    rgb[edge] = 1.0
    body = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)

    px = max(14, w // 45)  # the font's size
    font = ImageFont.load_default(size=px)
    pad, bar_w, label_w = 16, max(16, w // 50), max(60, w // 12)
    title_h = int(px * 2.2)
    canvas = Image.new("RGB", (w + 2 * pad + bar_w + label_w, h + title_h + pad), "white")
    canvas.paste(Image.fromarray(body), (pad, title_h))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, px // 2), title, fill="black", font=font)
    top, bottom, left = title_h + h // 10, title_h + h - h // 10, w + pad + pad // 2
    ramp = np.linspace(1, 0, bottom - top)[:, None].repeat(bar_w, axis=1)
    canvas.paste(Image.fromarray(jet(ramp, bytes=True)[..., :3]), (left, top))
    draw.rectangle((left, top, left + bar_w, bottom), outline="black")
    for v in (0.0, 0.5, 1.0):
        y = bottom - v * (bottom - top)
        draw.line((left + bar_w, y, left + bar_w + 5, y), fill="black")
        draw.text((left + bar_w + 8, y - px // 2), f"{v:.1f}", fill="black", font=font)
    note = ImageFont.load_default(size=max(10, px * 2 // 3))
    draw.text((left, bottom + 6), "saliency,\nshare of\nits peak;\nwhite: lung", fill="black", font=note)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=6, dpi=(FIGURE_DPI, FIGURE_DPI))
    return buf.getvalue()
