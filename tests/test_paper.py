"""The paper's tables from known small inputs, and the figures drawn from tables."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from patchcxr.paper.metrics import metrics_inputs, metrics_text
from patchcxr.paper.plan import PaperPlan
from patchcxr.paper.registry import applicable, build_table, documents, entry, generic_names
from patchcxr.paper.tables import classification_table, data_table, headline_metrics, split_table, write_index


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
    from patchcxr.paper.tables import seeds_table

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
    assert "SYNTHETIC" not in text
    write_index({"a.tsv": "A."}, tmp_path / "README.md", "SYNTHETIC DATA: measures nothing.")
    assert "> **SYNTHETIC DATA: measures nothing.**" in (tmp_path / "README.md").read_text()


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
    from patchcxr.paper.tables import adult_only_table

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
    from patchcxr.evaluation.strata import strata_columns
    from patchcxr.paper.tables import calibration_table, strata_paper_table

    nan = float("nan")
    cal = pd.DataFrame(
        [
            [
                "uncalibrated",
                1.0,
                40,
                40,
                0.9,
                0.8,
                1.0,
                nan,
                nan,
                nan,
                0.5,
                0.4,
                0.6,
                nan,
                nan,
                nan,
                0.2,
                0.1,
                0.3,
                0.08,
                0.15,
                0.7,
                "",
            ],
            [
                "temperature",
                2.5,
                40,
                40,
                0.6,
                0.5,
                0.7,
                -0.3,
                -0.4,
                -0.2,
                0.4,
                0.3,
                0.5,
                -0.1,
                -0.2,
                -0.05,
                0.05,
                0.02,
                0.1,
                0.08,
                0.15,
                0.7,
                "T fitted on the validation films",
            ],
        ],
        columns=CALIBRATION_COLUMNS,
    )
    t = calibration_table({("local", 2020): cal})
    assert list(t["note"]) == ["", "T fitted on the validation films"]
    assert list(t["ece"]) == ["0.200 [0.100, 0.300]", "0.050 [0.020, 0.100]"] and list(t["temperature"]) == [
        "1.000",
        "2.500",
    ]
    assert list(t["nll_difference"]) == ["NaN", "-0.300 [-0.400, -0.200]"]
    assert t["ece_if_calibrated"].iloc[0] == "0.080 (95th percentile 0.150)"
    columns = strata_columns(["normal", "tb"])
    big = ["source", "a", 30, 30, "normal,tb", 0.5, 0.9, 0.8, 1.0, 0.9, 0.8, 1.0, 0.85, 0.7, 0.95, 0.9, 0.9, ""]
    small = ["sex", "F", 3, 3, "tb", 1.0, *[np.nan] * 11, "3 patients < statistics.min_patients (10): no figures"]
    strata = pd.DataFrame([big, small], columns=columns)
    s = strata_paper_table({("local", 2020): strata, ("local", 2021): strata.iloc[:1], ("global", 2020): strata})
    assert len(s) == 4 and set(s["seed"]) == {2020}  # the first seed of each model
    rows = s[s["model"] == "local"].set_index("group")
    assert rows.loc["a", "accuracy"] == "0.900 [0.800, 1.000]" and rows.loc["F", "macro_f1"] == "NaN"
    assert rows.loc["a", "recall"] == "normal 0.90, tb 0.90" and rows.loc["a", "no_skill_accuracy"] == "0.500"
    assert rows.loc["F", "note"].startswith("3 patients")


# --------------------------------------------------------------------------- the registry
def plan(**changes: object) -> PaperPlan:
    """The demo's plan (both classifiers, one seed each, the audit on, no external
    validation), with ``changes``."""
    base = PaperPlan(
        models=("local", "global"),
        runs=(("global", 2020), ("local", 2020)),
        classification_seed=2020,
        segmentation_run="407",
        segmentation_networks=("fcdensenet_small", "unet_small"),
        segmentation_preps=("equalised", "minmax"),
        audit=True,
        external=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_every_registry_entry_has_a_unique_name_a_caption_and_a_way_to_be_made() -> None:
    from patchcxr.paper.registry import NAME, REGISTRY

    names = [e.name for e in REGISTRY]
    assert len(names) == len(set(names)) and all(NAME.fullmatch(n) for n in names)
    report = Path(__file__).resolve().parents[1] / "workflow" / "report"
    for e in REGISTRY:
        assert (report / e.caption).is_file(), e.name
        assert e.about and e.file == e.name + (".tsv" if e.kind == "table" else ".png")
        assert (e.build is not None) == (e.kind == "table"), e.name
        if e.kind == "figure" and not e.made_by:  # copied: one source figure
            assert list(e.inputs(plan())) == ["figure"] and len(e.inputs(plan())["figure"]) == 1, e.name
    assert [e.name for e in REGISTRY if e.made_by] == ["fig8_training_curves"]
    # the generic rules' wildcards are constrained by joining names: none is a prefix trap
    joined = re.compile("|".join(generic_names(plan(external=True), "table")))
    assert joined.fullmatch("table1_data") and not joined.fullmatch("table1") and not joined.fullmatch("table15_x")


def test_the_demo_plan_makes_todays_documents_in_the_index_order() -> None:
    tables = ["table1_data", "table2_splits", "table3_segmentation", "table4_biomarker_tests"]
    tables += ["table4_biomarker_primary", "table5_classification", "table7_seeds", "table8_adult_only"]
    tables += ["table6_global_vs_local", "table9_source_probe", "table10_class_source", "table11_calibration"]
    tables += ["table12_strata", "table14_saliency_sanity", "table15_within_class", "table16_mask_dice"]
    figures = ["fig1_segmentation_jaccard", "fig2_segmentation_examples", "fig3_biomarkers"]
    figures += ["fig4_cardiothoracic_ratio", "fig5_lung_histograms", "fig6_confusion_local", "fig6_confusion_global"]
    figures += ["fig7_saliency", "fig9_confound_audit", "fig8_training_curves"]
    assert documents(plan()) == [f"{t}.tsv" for t in tables] + [f"{f}.png" for f in figures]
    assert generic_names(plan(), "figure") == figures[:-1]  # figure 8 has a rule of its own
    assert entry("fig6_confusion_global").inputs(plan()) == {
        "figure": ["results/evaluation/global/seed_2020/confusion.png"]
    }


def test_the_plan_decides_which_tables_and_figures_apply() -> None:
    def names(p: PaperPlan) -> set[str]:
        return {e.name for e in applicable(p)}

    everything = names(plan())
    one = names(plan(models=("local",), runs=(("local", 2020),)))
    assert everything - one == {"table6_global_vs_local", "fig6_confusion_global"}  # two models: table 6
    only_global = names(plan(models=("global",), runs=(("global", 2020),)))
    assert everything - only_global == {
        *("table6_global_vs_local", "table14_saliency_sanity", "fig6_confusion_local", "fig7_saliency")
    }
    audit = {"table9_source_probe", "table10_class_source", "table15_within_class", "fig9_confound_audit"}
    assert everything - names(plan(audit=False)) == audit  # audit off: no tables 9, 10 and 15
    assert names(plan(external=True)) - everything == {"table13_external"}
    none = names(plan(models=(), runs=()))
    assert {n for n in none if n.startswith("table")} == {
        *("table1_data", "table2_splits", "table3_segmentation", "table4_biomarker_tests", "table4_biomarker_primary"),
        *("table9_source_probe", "table10_class_source", "table16_mask_dice"),
    }
    assert applicable(plan(), "table") == [e for e in applicable(plan()) if e.kind == "table"]


def test_the_plan_comes_from_the_configuration_and_names_each_runs_files() -> None:
    from tests.conftest import load_config

    cfg = load_config("config/demo.yaml")
    cfg["classification"]["models"] = ["global", "local"]
    cfg["classification"]["train"]["seeds"] = [2020, 2021]
    p = PaperPlan.from_config(cfg, audit=True, segmentation_preps=["equalised"])
    assert p.models == ("local", "global")  # the paper's order
    assert p.runs == (("global", 2020), ("global", 2021), ("local", 2020), ("local", 2021))  # the workflow's order
    assert (p.classification_seed, p.segmentation_run, p.external) == (2020, "407", False)
    inputs = entry("table5_classification").inputs(p)
    assert inputs["metrics"][1] == "results/evaluation/global/seed_2021/metrics.tsv"
    assert inputs["metadata"][2] == "results/classification/local/seed_2020/metadata.json"
    histories = entry("fig8_training_curves").inputs(p)
    assert list(histories) == [
        "segmentation/fcdensenet_small/equalised",
        "segmentation/unet_small/equalised",
        "classification/local",
        "classification/global",
    ]
    assert histories["classification/global"] == ["results/classification/global/seed_2020/history.tsv"]
    assert metrics_inputs(plan(models=(), runs=(), audit=False)) == {
        "summary": ["results/segmentation/summary.tsv"],
        "seeds": [],
        "verdict": [],
    }


def test_a_table_is_built_from_its_registry_inputs(tmp_path: Path) -> None:
    cohort = pd.DataFrame({"source": ["jsrt", "cohen"], "label5": ["normal", "covid19"]})
    cohort.to_csv(tmp_path / "cohort.tsv", sep="\t", index=False)
    table = build_table("table1_data", {"cohort": [str(tmp_path / "cohort.tsv")]}, [])
    pd.testing.assert_frame_equal(table, data_table(cohort))
    with pytest.raises(ValueError, match="figure"):
        build_table("fig1_segmentation_jaccard", {}, [])
    with pytest.raises(KeyError, match="table99"):
        entry("table99")
    summary = pd.DataFrame(
        {"model": ["unet"], "preprocessing": ["equalised"], "dataset": ["jsrt"], "structure": ["both lungs"]}
    ).assign(jaccard_mean=[0.9])
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    text = metrics_text({"summary": [str(tmp_path / "summary.tsv")], "seeds": [], "verdict": []}, [], "")
    assert json.loads(text) == {
        "classification": {},
        "segmentation": {"unet/equalised/jsrt": {"jaccard": 0.9}},
        "data": {"synthetic": False, "synthetic_sources": [], "note": ""},
    }
    made = metrics_text({"summary": [str(tmp_path / "summary.tsv")], "seeds": [], "verdict": []}, ["jsrt"], "X")
    assert json.loads(made)["data"] == {"synthetic": True, "synthetic_sources": ["jsrt"], "note": "X"}
    assert text.endswith("}\n")
