"""The paper's tables from known small inputs, and the figures drawn from tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from patchcxr.paper import classification_table, data_table, headline_metrics, split_table, write_index


def test_data_and_split_tables_count_every_image_once() -> None:
    cohort = pd.DataFrame(
        {
            "source": ["jsrt"] * 3 + ["cohen"] * 4,
            "label5": ["normal", "normal", "normal", "covid19", "covid19", "viral", "bacterial"],
        }
    )
    table = data_table(cohort).set_index("source")
    assert list(table.columns) == ["normal", "bacterial", "viral", "covid19", "total"]  # the paper's order
    assert table.loc["jsrt", "normal"] == 3 and table.loc["cohen", "covid19"] == 2
    assert table.loc["total", "total"] == 7 and table.loc["cohen", "total"] == 4
    split = pd.DataFrame({"label4": ["normal"] * 5 + ["tb"] * 2, "split": ["train"] * 4 + ["test", "val", "train"]})
    st = split_table(split).set_index("class")
    assert st.loc["normal", "train"] == 4 and st.loc["normal", "val"] == 0 and st.loc["tb", "val"] == 1
    assert st.loc["total", "total"] == 7


def test_classification_table_and_headline_metrics() -> None:
    rows = [
        ("normal", "recall", 0.8, 0.6, 0.95, 10),
        ("normal", "f1", 0.75, 0.5, 0.9, 10),
        ("accuracy", "recall", 0.7, 0.55, 0.85, 20),
        ("macro", "f1", 0.65, 0.5, 0.8, 20),
        ("macro", "specificity", 0.9, 0.85, 0.95, 20),
    ]
    metrics = pd.DataFrame(rows, columns=["class", "metric", "value", "ci_low", "ci_high", "support"])
    table = classification_table({("local", 2020): metrics}).set_index("class")
    assert table.loc["normal", "recall"] == "0.800 [0.600, 0.950]" and table.loc["normal", "n"] == 10
    assert table.loc["normal", "seed"] == 2020
    from patchcxr.evaluation.comparisons import over_seeds
    from patchcxr.paper import seeds_table

    better = metrics.assign(value=metrics["value"] + 0.1)  # a second run, 0.1 better everywhere
    seeds = over_seeds({"local": {2020: metrics, 2021: better}})
    wide = seeds_table(seeds).set_index("class")
    assert wide.loc["normal", "recall"] == "0.850 ± 0.071" and wide.loc["normal", "n_seeds"] == 2
    assert wide.loc["macro", "seeds"] == "2020,2021"
    summary = pd.DataFrame(
        {
            "model": ["unet"] * 2,
            "preprocessing": ["equalised"] * 2,
            "dataset": ["jsrt"] * 2,
            "structure": ["both lungs", "heart"],
            "jaccard_mean": [0.95, 0.8],
        }
    )
    head = headline_metrics(summary, seeds)
    assert head["segmentation"] == {"unet/equalised/jsrt": {"jaccard": 0.95}}
    local = head["classification"]["local"]
    assert local["accuracy"] == 0.75 and local["macro_f1"] == 0.7 and local["n_seeds"] == 2
    assert local["accuracy_sd"] == pytest.approx(0.1 / np.sqrt(2), abs=1e-6)
    json.dumps(head)  # DVC reads it as JSON


def test_index_lists_every_file_with_its_caption(tmp_path: Path) -> None:
    write_index({"a.tsv": "Line one\n  line two.", "b.png": "B."}, tmp_path / "README.md")
    text = (tmp_path / "README.md").read_text()
    assert "## a.tsv\n\nLine one line two.\n" in text and "## b.png\n\nB.\n" in text


def test_saliency_figure_and_training_curves_are_drawn_from_tables(tmp_path: Path) -> None:
    from PIL import Image

    from patchcxr.figures import plot_saliency, plot_training_curves

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "o.png")
    pd.DataFrame(
        [
            {
                "image_id": "cohen/a",
                "overlay": str(tmp_path / "o.png"),
                "mean_probability": 0.9,
                "peak_row": 10,
                "peak_col": 12,
                "n_lesions": 1,
                "lesion_boxes": "5,5,20,20",
                "pointing_hit": 1,
            },
            {
                "image_id": "kermany/b",
                "overlay": str(tmp_path / "o.png"),
                "mean_probability": 0.4,
                "peak_row": 1,
                "peak_col": 1,
                "n_lesions": 0,
                "lesion_boxes": "",
                "pointing_hit": "",
            },
        ]
    ).to_csv(tmp_path / "s.tsv", sep="\t", index=False)
    plot_saliency(tmp_path / "s.tsv", tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").size[0] > 300
    for name, score in (("seg", "val_mean_jaccard"), ("cls", "val_macro_f1")):
        pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], score: [0.2, 0.4]}).to_csv(
            tmp_path / f"{name}.tsv", sep="\t", index=False
        )
    hist = {"segmentation/u": tmp_path / "seg.tsv", "classification/local": tmp_path / "cls.tsv"}
    plot_training_curves(hist, tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").size[0] > 500


def test_table_1_flags_paediatric_films_and_table_8_restricts_the_test_to_adults() -> None:
    from patchcxr.evaluation.metrics import metrics_long
    from patchcxr.paper import adult_only_table

    cohort = pd.DataFrame(
        {
            "source": ["kermany", "kermany", "cohen", "cohen"],
            "label5": ["normal", "bacterial", "covid19", "normal"],
            "paediatric": ["1", "1", "0", "0"],
        }
    )
    table = data_table(cohort).set_index("source")
    assert table.loc["kermany", "paediatric"] == 2 and table.loc["cohen", "paediatric"] == 0
    assert table.loc["total", "paediatric"] == 2
    # six test films: the two paediatric ones are the only errors
    names = ["normal", "bacterial"]
    pred = pd.DataFrame(
        {
            "true": ["normal", "bacterial", "normal", "bacterial", "normal", "bacterial"],
            "true_index": [0, 1, 0, 1, 0, 1],
            "pred_hard_index": [1, 0, 0, 1, 0, 1],
            "age_group": ["paediatric", "paediatric", "adult", "adult", "adult", "adult"],
            "patient_id": list("abcdef"),
        }
    )
    y, p = pred["true_index"].to_numpy(), pred["pred_hard_index"].to_numpy()
    adult = (pred["age_group"] == "adult").to_numpy()
    everything = metrics_long(y, p, names, groups=pred["patient_id"].to_numpy(), n_boot=50)
    grown = metrics_long(y[adult], p[adult], names, groups=pred["patient_id"].to_numpy()[adult], n_boot=50)
    row = adult_only_table({("local", 1): everything}, {("local", 1): grown}, {("local", 1): pred}).iloc[0]
    assert row["n_test"] == 6 and row["n_adult"] == 4 and row["adult_classes"] == "bacterial,normal"
    assert row["accuracy"].startswith("0.667 [") and row["accuracy_adult"] == "1.000 [1.000, 1.000]"


def test_calibration_and_strata_tables_write_intervals_and_nan_for_small_groups() -> None:
    from patchcxr.evaluation.calibration import CALIBRATION_COLUMNS
    from patchcxr.evaluation.strata import STRATA_COLUMNS
    from patchcxr.paper import calibration_table, strata_paper_table

    cal = pd.DataFrame(
        [
            ["uncalibrated", 1.0, 40, 40, 0.2, 0.1, 0.3, 0.9, 0.5, 0.7],
            ["temperature", 2.5, 40, 40, 0.05, 0.02, 0.1, 0.6, 0.4, 0.7],
        ],
        columns=CALIBRATION_COLUMNS,
    )
    t = calibration_table({("local", 2020): cal})
    assert list(t["ece"]) == ["0.200 [0.100, 0.300]", "0.050 [0.020, 0.100]"] and list(t["temperature"]) == [
        "1.000",
        "2.500",
    ]
    big = ["source", "a", 30, 30, "normal,tb", 0.9, 0.8, 1.0, 0.85, 0.7, 0.95]
    small = ["sex", "F", 3, 3, "tb", np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]
    strata = pd.DataFrame([big, small], columns=STRATA_COLUMNS)
    s = strata_paper_table({("local", 2020): strata, ("local", 2021): strata.iloc[:1], ("global", 2020): strata})
    assert len(s) == 4 and set(s["seed"]) == {2020}  # the first seed of each model
    rows = s[s["model"] == "local"].set_index("group")
    assert rows.loc["a", "accuracy"] == "0.900 [0.800, 1.000]" and rows.loc["F", "macro_f1"] == "NaN"
