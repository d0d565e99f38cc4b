"""Figures a reviewer accepts (patchcxr.figures): print resolution, a title that names the
run and its n, and a group too small for quartiles drawn as its points, not as a box."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from patchcxr import figures


def _confusion_table(path: Path) -> None:
    rows = []
    counts = {("normal", "normal"): 4, ("normal", "tb"): 1, ("tb", "normal"): 2, ("tb", "tb"): 3}
    for true in ("normal", "tb"):
        total = sum(v for (t, _), v in counts.items() if t == true)
        for pred in ("normal", "tb"):
            n = counts[(true, pred)]
            rows.append({"true": true, "predicted": pred, "count": n, "row_fraction": n / total})
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


def test_figures_are_written_at_print_resolution_with_a_title_naming_model_seed_and_n(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    _confusion_table(tmp_path / "confusion.tsv")
    titles: list[str] = []
    save = figures._save

    def spy(fig, out):  # type: ignore[no-untyped-def]
        titles.extend(ax.get_title() for ax in fig.axes)
        save(fig, out)

    monkeypatch.setattr(figures, "_save", spy)
    figures.plot_confusion(tmp_path / "confusion.tsv", tmp_path / "c.png", title="local classifier, seed 2020")
    dpi = Image.open(tmp_path / "c.png").info["dpi"]
    assert min(dpi) >= figures.FIGURE_DPI - 1 >= 199
    assert "local classifier, seed 2020: test split, n = 10 films" in titles


def test_groups_under_the_minimum_n_are_points_not_boxes() -> None:
    fig, ax = plt.subplots()
    rng = np.random.default_rng(1)
    boxed = figures._groups(ax, [rng.normal(size=2), rng.normal(size=12), np.array([])], ["a", "b", "c"], min_n=10)
    assert boxed == [1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a (n=2)", "b (n=12)", "c (n=0)"]
    # every value is drawn as a point, in the boxed group too
    assert sum(len(c.get_offsets()) for c in ax.collections) == 14
    plt.close(fig)


def test_segmentation_scores_name_each_group_with_its_n(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {
            "dataset": "jsrt",
            "structure": "both lungs",
            "model": m,
            "preprocessing": "equalised",
            "image_id": f"i{i}",
            "jaccard": 0.9,
        }
        for m, n in (("unet", 3), ("fcdensenet", 12))
        for i in range(n)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "scores.tsv", sep="\t", index=False)
    drawn: list[list[int]] = []
    groups = figures._groups

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append(groups(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(figures, "_groups", spy)
    figures.plot_segmentation_scores(tmp_path / "scores.tsv", tmp_path / "s.png", min_n=10)
    assert drawn == [[0]]  # fcdensenet (12 images) sorts first and is the only box
    assert Image.open(tmp_path / "s.png").size[0] >= 1000
