"""The workflow as a user runs it: dry run of the demo, a real run of the CI configuration."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from patchcxr.io import read_tsv
from patchcxr.models.state import load_state
from tests.conftest import DUMMY_SECRETS, ROOT, TRACKED
from tests.helpers import tree_digest
from tests.workflow_runs import CI_CONFIG, copy_workflow, reproducible_digest, snakemake


def test_demo_dry_run_lists_every_synthetic_source(tmp_path: Path) -> None:
    proc = snakemake(
        copy_workflow(tmp_path), "-n", "--cores", "2", "--configfile", "config/config.yaml", "config/demo.yaml"
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert re.search(r"make_synthetic\s+6\n", out)
    assert re.search(r"train_segmentation\s+4\n", out)  # 2 networks x with/without preprocessing, 1 seed
    assert re.search(r"probe_source\s+3\n", out)  # the audit: the global classifier's three views
    for source in ("jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen"):
        assert f"results/synthetic/{source}" in out


def test_paper_config_without_jsrt_stops_early_with_registration_advice(tmp_path: Path) -> None:
    # the paper's configuration needs a registered JSRT copy in resources/raw/jsrt
    proc = snakemake(copy_workflow(tmp_path), "-n", "--cores", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "http://db.jsrt.or.jp/eng.php" in out and "sources.jsrt.path" in out
    assert "Job stats" not in out


# ----------------------------------------------------------------------------- the CI run, stage by stage
# One shared run of the CI configuration (the session fixture ci_run); one test per stage.


@pytest.mark.slow
def test_synthetic_stage_writes_the_package_s_sources(ci_run: Path, synthetic_tree: Path) -> None:
    for source in ("jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen"):
        made = {
            k: v for k, v in tree_digest(ci_run / "results" / "synthetic" / source).items() if ".snakemake" not in k
        }
        assert made == tree_digest(synthetic_tree / source)
        assert (ci_run / "logs" / "synthetic" / f"{source}.log").read_text().strip()


@pytest.mark.slow
def test_data_stage_makes_manifest_quarantine_and_disjoint_splits_in_shards(ci_run: Path) -> None:
    from patchcxr.data.splits import check_disjoint

    manifest = read_tsv(ci_run / "results" / "data" / "manifest.tsv")
    assert set(manifest["source"]) == {"jsrt", "montgomery", "shenzhen", "kermany", "cohen"}
    quarantine = read_tsv(ci_run / "results" / "data" / "quarantine.tsv")
    assert quarantine["reason"].str.startswith("excluded view").sum() == 1  # the lateral film
    for name in ("classification", "segmentation"):
        split = read_tsv(ci_run / "results" / "splits" / f"{name}.tsv")
        assert len(split) and set(split["split"]) <= {"train", "val", "test"}
        check_disjoint(split, manifest)
    # several harmonisation shards per source, never one job per image
    shards = list((ci_run / "results" / "data" / "shards" / "cohen").glob("*.tsv"))
    assert 1 < len([s for s in shards if "quarantine" not in s.name]) < len(manifest[manifest["source"] == "cohen"])


@pytest.mark.slow
def test_segmentation_and_masks_stages_evaluate_every_network_and_mask_every_film(ci_run: Path) -> None:
    summary = read_tsv(ci_run / "results" / "segmentation" / "summary.tsv")
    assert set(summary["model"]) == {"fcdensenet_tiny", "unet_tiny"}
    assert set(summary["preprocessing"]) == {"equalised", "minmax"}
    assert (summary["n_seeds"].astype(int) == 1).all()  # segmentation.train.seeds: [407]
    assert (ci_run / "results" / "segmentation" / "figures" / "jaccard.png").stat().st_size > 1000
    # cross-fitted (.test/config.yaml): one network per fold, each recording the fold it held
    # out and trained on exactly the traced films of the other folds and the unclassified ones
    from patchcxr.data.splits import fold_view, segmenter_test_ids
    from patchcxr.segmentation.data import split_rows

    manifest = read_tsv(ci_run / "results" / "data" / "manifest.tsv")
    split = read_tsv(ci_run / "results" / "splits" / "segmentation.tsv")
    for fold in (0, 1):
        run = ci_run / "results" / "segmentation" / "unet_tiny" / "equalised" / f"seed_407-f{fold}"
        meta = json.loads((run / "metadata.json").read_text())
        assert meta["config"]["fold"] == fold, meta["config"]
        assert "manifest" in json.dumps(meta) and "segmentation_split" in json.dumps(meta)
        view = fold_view(split, fold)
        assert meta["n_train"] == len(split_rows(manifest, view, ["train"])), (fold, meta["n_train"])
        assert meta["n_val"] == len(split_rows(manifest, view, ["val"]))
        mine = split.loc[split["fold"].astype(int) == fold, "image_id"]
        assert len(mine) and meta["n_train"] + meta["n_val"] <= len(split) - len(mine)
    qc = read_tsv(ci_run / "results" / "masks" / "qc.tsv")
    assert sorted(qc["image_id"]) == sorted(manifest["image_id"])
    assert all((ci_run / p).is_file() for p in qc["mask_path"])
    # every classified film is masked by its fold's network and scored by it, which never
    # trained on its tracing; the films no classifier sees, by the first
    folds = read_tsv(ci_run / "results" / "splits" / "mask_folds.tsv")
    fold_of = dict(zip(folds["image_id"], folds["fold"].astype(int), strict=True))
    assert set(fold_of.values()) == {0, 1}
    # (a film of a classified patient outside the cohort, e.g. a lateral view: its patient's fold)
    patient_fold = dict(zip(folds["patient_id"], folds["fold"].astype(int), strict=False))
    patient_of = dict(zip(manifest["image_id"], manifest["patient_id"], strict=True))
    expected = qc["image_id"].map(lambda i: fold_of.get(i, patient_fold.get(patient_of[i], 0)))
    assert (qc["mask_fold"].astype(int) == expected).all()
    for r in split.itertuples():
        assert int(r.fold) == fold_of.get(r.image_id, -1), r
    scores = read_tsv(ci_run / "results" / "segmentation" / "scores.tsv", typed=True)
    scored = scores[scores["image_id"].isin(fold_of)]
    assert len(scored) and (scored["fold"] == scored["image_id"].map(fold_of)).all()
    assert scores.groupby(["model", "preprocessing", "seed", "image_id", "structure"]).size().max() == 1
    # and every test film of every fold is scored, once per network and preprocessing
    test_ids = segmenter_test_ids(split, 0) | segmenter_test_ids(split, 1)
    tested = set(
        split_rows(manifest, split[split["image_id"].isin(test_ids)].assign(split="test"), ["test"])["image_id"]
    )
    for _, part in scores.groupby(["model", "preprocessing"]):
        assert set(part["image_id"]) == tested


@pytest.mark.slow
def test_biomarkers_stage_measures_the_cohort_tests_it_and_draws_four_figures(ci_run: Path) -> None:
    features = read_tsv(ci_run / "results" / "biomarkers" / "features.tsv")
    cohort = read_tsv(ci_run / "results" / "data" / "cohort.tsv")
    assert sorted(features["image_id"]) == sorted(cohort["image_id"])
    tests = read_tsv(ci_run / "results" / "biomarkers" / "tests.tsv")
    assert {"kruskal-wallis", "anova", "mann-whitney", "welch-t"} <= set(tests["test"])
    for fig in ("features", "ctr_scatter", "histograms", "examples"):
        assert (ci_run / "results" / "biomarkers" / "figures" / f"{fig}.png").stat().st_size > 1000


@pytest.mark.slow
def test_classifier_and_evaluation_stages_train_predict_calibrate_and_compare(ci_run: Path) -> None:
    split = read_tsv(ci_run / "results" / "splits" / "classification.tsv")
    # the input settings, written once beside the cached inputs, are what each model file records
    recorded = json.loads((ci_run / "results" / "classification" / "inputs.json").read_text())
    for model in ("local", "global"):
        state = load_state(ci_run / "results" / "classification" / model / "seed_2020" / "model.pt")
        assert json.loads(state["inputs"]) == recorded
        run = ci_run / "results" / "evaluation" / model / "seed_2020"  # one run per classification.train.seeds
        metrics = read_tsv(run / "metrics.tsv")
        assert {"precision", "recall", "f1", "specificity"} <= set(metrics["metric"])
        predictions = read_tsv(run / "predictions.tsv")
        assert sorted(predictions["image_id"]) == sorted(split.query("split == 'test'")["image_id"])
        assert (run / "confusion.png").is_file() and (run / "reliability.png").is_file()
        # calibration: the temperature from the validation films' votes, applied to the test films'
        val = read_tsv(run / "predictions_val.tsv")
        assert sorted(val["image_id"]) == sorted(split.query("split == 'val'")["image_id"])
        calibration = read_tsv(run / "calibration.tsv", typed=True)
        # the prior's row where every class has training films
        assert list(calibration["calibration"])[:2] == ["uncalibrated", "temperature"]
        assert list(calibration["calibration"])[2:] in ([], ["prior + temperature"])
        assert (calibration["n"] == len(predictions)).all()
        strata = read_tsv(run / "strata.tsv", typed=True)
        by_source = strata[strata["stratum"] == "source"].set_index("group")["n"]
        assert by_source.to_dict() == predictions["source"].value_counts().to_dict()
        assert {"view", "sex", "age_band", "mask_source"} <= set(strata["stratum"])
    comparison = read_tsv(ci_run / "results" / "evaluation" / "global_vs_local.tsv", typed=True)
    assert sorted(set(comparison["seed"])) == [2020]
    seeds = read_tsv(ci_run / "results" / "evaluation" / "over_seeds.tsv", typed=True)
    assert set(seeds["model"]) == {"local", "global"}
    # one seed: a figure with a value has one run, one that is NaN (below the minimum n) none
    assert (seeds["n_seeds"] == seeds["mean"].notna().astype(int)).all()


@pytest.mark.slow
def test_saliency_maps_every_mapped_film_and_runs_the_randomisation_test(ci_run: Path) -> None:
    saliency = read_tsv(ci_run / "results" / "saliency" / "local" / "saliency.tsv", typed=True)
    for image_id in saliency["image_id"]:
        assert (ci_run / "results" / "saliency" / "local" / "maps" / f"{image_id}.png").is_file()
    assert saliency["lung_mass_even"].between(0, 1).all()
    # each mapped film against the cascade (head down to the stem), each stage alone and the
    # label-permuted classifier, on the method's and the absolute map
    randomised = read_tsv(ci_run / "results" / "saliency" / "local" / "randomisation.tsv")
    assert set(randomised["variant"]) == {"cascade", "independent", "label-permuted"}
    assert {"fc", "layer4", "conv1+bn1"} <= set(randomised["block"]) and set(randomised["map"]) == {"relu", "abs"}
    per_film = randomised.groupby("image_id").size()
    assert sorted(per_film.index) == sorted(saliency["image_id"]) and (per_film == 2 * (6 + 5 + 1)).all()
    assert (ci_run / "results" / "saliency" / "local" / "label_permuted" / "model.pt").is_file()
    sanity = read_tsv(ci_run / "results" / "saliency" / "local" / "sanity.tsv", typed=True)
    assert {"spearman, cascade", "spearman, label-permuted", "lung mass, evenly spread"} <= set(sanity["check"])
    # two films of one or two patients: below statistics.min_patients, no figure, the reason
    assert sanity["value"].isna().all() and sanity["note"].str.contains("min_patients").all()


@pytest.mark.slow
def test_audit_stage_probes_each_view_over_every_classified_film(ci_run: Path) -> None:
    audit = ci_run / "results" / "audit"
    split = read_tsv(ci_run / "results" / "splits" / "classification.tsv")
    probes = read_tsv(audit / "probes.tsv", typed=True)
    assert list(probes["view"]) == ["lung", "outside", "mask"] and set(probes["mode"]) == {"local"}
    # audit.folds 3: every classified film scored once, by a probe that never saw its patient
    assert (probes["n"] == len(split)).all()
    assert ((probes["chance"] - 1 / probes["n_sources"]).abs() < 1e-6).all()
    assert (probes["balanced_accuracy_ci_low"] <= probes["balanced_accuracy"]).all()
    outside = read_tsv(audit / "local" / "outside" / "inputs.tsv")  # patches drawn outside the lung
    assert all(p.endswith(".outside.png") for p in outside["lung_path"])
    counts = read_tsv(audit / "class_source.tsv", typed=True)
    assert counts["n"].sum() == len(read_tsv(ci_run / "results" / "classification" / "inputs.tsv"))
    verdict = json.loads((audit / "verdict.json").read_text())
    assert set(verdict) >= {"confounded", "cramers_v", "views_reading_source", "main_source"}


@pytest.mark.slow
def test_paper_stage_makes_every_registered_table_and_figure_with_its_caption(ci_run: Path) -> None:
    paper = ci_run / "results" / "paper"
    index = (paper / "README.md").read_text()
    made = sorted(p.name for p in paper.iterdir() if p.name != "README.md")
    # 16 tables (13, leave-one-source-out, is off), 10 figures, metrics.json and headline.json
    assert len(made) == 28, made
    for name in made:
        if name not in ("metrics.json", "headline.json"):
            assert f"## {name}" in index and (paper / name).stat().st_size > 100
    # the report's pages: About this run and one page per table, each saying its films are synthetic
    pages = sorted(p.name for p in (ci_run / "results" / "report").iterdir())
    assert pages == sorted(["about.html", *(n.replace(".tsv", ".html") for n in made if n.endswith(".tsv"))])
    assert all("SYNTHETIC DATA" in (ci_run / "results" / "report" / p).read_text() for p in pages)
    assert index.startswith("# Figures and tables\n\n> **SYNTHETIC DATA")
    assert set(json.loads((paper / "headline.json").read_text())) == {
        "local_f1",
        "local_acc",
        "global_f1",
        "global_acc",
        "lung_jaccard",
    }
    assert "Jaccard" in index.split("## table3_segmentation.tsv")[1].split("##")[0]
    cohort = read_tsv(ci_run / "results" / "data" / "cohort.tsv")
    data = read_tsv(paper / "table1_data.tsv")
    assert int(data.set_index("source").loc["total", "total"]) == len(cohort)
    headline = json.loads((paper / "metrics.json").read_text())
    verdict = json.loads((ci_run / "results" / "audit" / "verdict.json").read_text())
    assert set(headline["classification"]) == {"local", "global"} and headline["segmentation"]
    assert headline["audit"]["confounded"] == verdict["confounded"]
    probe_table = read_tsv(paper / "table9_source_probe.tsv")
    states = {"reads the source", "shown not to", "inconclusive", "one source"}
    assert set(probe_table["state"]) <= states and len(probe_table) == 3
    assert set(probe_table["verdict"]) <= {"confounded", "not confounded", "inconclusive"}


@pytest.mark.slow
def test_a_second_run_of_the_ci_workflow_has_nothing_to_do(ci_run: Path) -> None:
    again = snakemake(ci_run, "-n", "--cores", "2", *CI_CONFIG, TRACKED)
    assert "Nothing to be done" in again.stdout + again.stderr
    # ... also when the overlay is given alone (config.yaml comes from the Snakefile):
    # params are compared key-order-independently
    alone = snakemake(ci_run, "-n", "--cores", "2", "--configfile", ".test/config.yaml", TRACKED)
    assert "Nothing to be done" in alone.stdout + alone.stderr


def test_a_source_without_local_copy_gets_its_download_rule(tmp_path: Path) -> None:
    overlay = tmp_path / "dl.yaml"  # (outside the copied workflow's folders)
    overlay.write_text(
        "sources:\n  cohen: {format: cohen, path: results/synthetic/cohen}\n"
        "  extra: {format: cohen, download: {url: 'http://127.0.0.1:9/x.tar.gz', strip: 1}}\n"
    )
    proc = snakemake(
        ROOT, "-n", "--cores", "1", "--configfile", "config/config.yaml", ".test/config.yaml", str(overlay)
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "download_extra" in out and "resources/raw/extra" in out


@pytest.mark.slow
def test_every_training_and_evaluation_run_is_nested_in_the_pipeline_run(ci_run: Path) -> None:
    import json

    import mlflow

    from patchcxr.io import sha256_file

    pipeline = json.loads((ci_run / "results" / "tracking" / "pipeline_run.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{ci_run}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["ci"])
    stages = sorted(runs["tags.patchcxr.stage"])
    expected = ["evaluate-segmentation", "pipeline"]
    expected += [
        f"{k}-{m}-seed_{s}" for k in ("classifier", "evaluate-classifier") for m in ("local", "global") for s in (2020,)
    ]
    expected += [  # one run per cross-fitting fold (.test/config.yaml: crossfit, 2 folds)
        f"segmentation-{m}-{p}-seed_{s}-f{f}"
        for m in ("fcdensenet_tiny", "unet_tiny")
        for p in ("equalised", "minmax")
        for s in (407,)
        for f in (0, 1)
    ]
    assert stages == sorted(expected)
    children = runs[runs["tags.patchcxr.stage"] != "pipeline"]
    assert (children["tags.mlflow.parentRunId"] == pipeline["run_id"]).all()
    assert (children["status"] == "FINISHED").all()
    # the parent spans the pipeline (closed by the workflow's end), each run names its rule
    parent = runs[runs["tags.patchcxr.stage"] == "pipeline"].iloc[0]
    assert parent["status"] == "FINISHED" and parent["end_time"] >= children["end_time"].max()
    assert set(children["tags.mlflow.source.name"]) == {
        f"rule {r}" for r in ("train_classifier", "train_segmentation", "evaluate_classifier", "evaluate_segmentation")
    }
    manifest_sha = sha256_file(ci_run / "results" / "data" / "manifest.tsv")
    assert (children["params.provenance.sha256.manifest"] == manifest_sha).all()
    assert (children["tags.patchcxr.data_version"] == f"manifest-{manifest_sha[:16]}").all()
    split_sha = sha256_file(ci_run / "results" / "splits" / "classification.tsv")
    local = children[children["tags.patchcxr.stage"] == "classifier-local-seed_2020"].iloc[0]
    assert local["params.provenance.sha256.classification_split"] == split_sha
    evaluated = children[children["tags.patchcxr.stage"] == "evaluate-classifier-local-seed_2020"].iloc[0]
    table = pd.read_csv(ci_run / "results" / "evaluation" / "local" / "seed_2020" / "metrics.tsv", sep="\t")
    macro_f1 = table[(table["class"] == "macro") & (table["metric"] == "f1")]["value"].iloc[0]
    assert evaluated["metrics.macro.f1"] == pytest.approx(macro_f1, abs=5e-7)  # the table's value, not another
    assert evaluated["params.provenance.sha256.split"] == split_sha


@pytest.mark.slow
def test_two_clean_runs_give_identical_tables(ci_run: Path, second_run: Any) -> None:
    """Reproducibility (CPU, fixed seeds): manifests, splits, metrics and every figure's
    source table equal byte for byte between two runs in fresh folders (the second one
    untracked, and through SLURM where a cluster can be started)."""
    first_digest, second_digest = reproducible_digest(ci_run), reproducible_digest(second_run.workdir)
    assert len(first_digest) >= 25
    assert second_digest == first_digest


@pytest.mark.slow
def test_credentials_in_the_environment_reach_no_output(ci_run: Path) -> None:
    """The CI run had dummy Kaggle credentials in its environment: no log, table, model,
    metadata file, MLflow parameter (the SQLite store) or Snakemake output may hold them."""
    files = [p for p in ci_run.rglob("*") if p.is_file() and not p.is_symlink()]
    assert (ci_run / "mlflow.db") in files and any(p.suffix == ".log" for p in files)
    for secret in DUMMY_SECRETS.values():
        leaked = [str(p.relative_to(ci_run)) for p in files if secret.encode() in p.read_bytes()]
        assert not leaked, (secret, leaked)


#: a cohort that is a small part of its sources: 300 paediatric Kermany films, which
#: `data.cohort: all` with `labels.exclude_paediatric` leaves out, beside the CI tree's
#: twenty-odd adult films; one segmentation network and seed keep the run short, and two
#: classifier seeds run the multi-seed tables end to end (the CI overlay has one seed)
SMALL_COHORT = """
synthetic:
  kermany: {height: 96, width: 128, counts: {normal: 100, bacterial: 100, viral: 100}}
data: {shard_size: 60}
segmentation:
  train_models: [fcdensenet_tiny]
  preprocessing_ablation: false
  train: {seeds: [407]}
  predict: {shard_size: 60}
classification:
  train: {seeds: [2020, 2021]}
# the audit off: the paper target without its tables (and CI time)
audit: {enabled: false}
"""


@pytest.mark.slow
def test_a_cohort_that_is_a_small_part_of_its_sources_runs_end_to_end(tmp_path: Path) -> None:
    from patchcxr.io import read_tsv

    workdir = copy_workflow(tmp_path / "run")
    overlay = workdir / "small.yaml"
    overlay.write_text(SMALL_COHORT)
    proc = snakemake(workdir, "--cores", "2", *CI_CONFIG, str(overlay), timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    results = workdir / "results"
    manifest = read_tsv(results / "data" / "manifest.tsv")
    cohort = read_tsv(results / "data" / "cohort.tsv")
    assert (manifest["source"] == "kermany").sum() == 300 and "kermany" not in set(cohort["source"])
    assert len(cohort) / len(manifest) < 0.1  # a few percent of the films
    # mask shards without a cohort film: an empty input table and an (empty) input folder
    empty = 0
    for shard in sorted((results / "masks" / "shards").glob("*.tsv")):
        ids = set(read_tsv(shard)["image_id"])
        inputs = read_tsv(results / "classification" / "inputs" / shard.name)
        assert set(inputs["image_id"]) == ids & set(cohort["image_id"])
        assert (results / "classification" / "inputs" / shard.stem).is_dir()
        empty += not ids & set(cohort["image_id"])
    assert empty >= 3
    # every test film of the cohort has a prediction, and the paper target was made
    split = read_tsv(results / "splits" / "classification.tsv")
    predictions = read_tsv(results / "evaluation" / "local" / "seed_2020" / "predictions.tsv")
    assert sorted(predictions["image_id"]) == sorted(split.query("split == 'test'")["image_id"])
    assert (results / "paper" / "README.md").is_file()
    # two classifier seeds: every run evaluated and compared, the spread over runs tabled
    seeds = read_tsv(results / "evaluation" / "over_seeds.tsv", typed=True)
    assert (seeds[seeds["class"] == "accuracy"]["n_seeds"] == 2).all() and set(seeds["model"]) == {"local", "global"}
    comparison = read_tsv(results / "evaluation" / "global_vs_local.tsv", typed=True)
    assert sorted(set(comparison["seed"])) == [2020, 2021]
    pooled = read_tsv(results / "evaluation" / "global_vs_local_pooled.tsv", typed=True)
    assert list(pooled["statistic"]) == ["accuracy difference", "macro-F1 difference", "macro AUC difference"]
    assert (pooled["n_seeds"] == 2).all() and (pooled["n_images"] == len(predictions)).all()
    assert "2" in set(read_tsv(results / "paper" / "table7_seeds.tsv")["n_seeds"])
    # audit.enabled false: no probe trained, the paper target without table 9, 10 or figure 9
    assert not (results / "audit").exists()
    assert not [*(results / "paper").glob("*9_*"), *(results / "paper").glob("table10_*")]


def test_a_configured_path_that_does_not_exist_is_named_not_sent_to_registration(tmp_path: Path) -> None:
    overlay = tmp_path / "typo.yaml"
    overlay.write_text("sources:\n  jsrt: {format: jsrt, path: /data/jsrtt, masks: scr}\n")
    proc = snakemake(
        ROOT, "-n", "--cores", "1", "--configfile", "config/config.yaml", ".test/config.yaml", str(overlay)
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in out
    assert "sources.jsrt.path is '/data/jsrtt', which does not exist (resolved: /data/jsrtt)" in out
    assert "register" not in out.lower()


def test_a_missing_path_is_named_even_after_a_finished_run(tmp_path: Path) -> None:
    """Finished results do not hide a source path that no longer exists (issue 30): the
    path is checked when the workflow loads, whatever results/ holds."""
    workdir = copy_workflow(tmp_path / "run")
    for name in ("manifest", "quarantine", "intake", "conflicts", "cohort"):
        (workdir / "results" / "data").mkdir(parents=True, exist_ok=True)
        (workdir / "results" / "data" / f"{name}.tsv").write_text("x\n")
    overlay = workdir / "moved.yaml"
    overlay.write_text("sources:\n  montgomery: {format: montgomery, path: /data/montgomery-moved}\n")
    proc = snakemake(workdir, "-n", "--cores", "1", "start_pipeline_run", *CI_CONFIG, str(overlay))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in out
    assert "sources.montgomery.path is '/data/montgomery-moved', which does not exist" in out


def test_a_failing_job_writes_its_traceback_to_its_rule_log(tmp_path: Path) -> None:
    """The index job of a source folder that holds masks but no images fails: its log holds
    the cause, with the traceback, and says it once."""
    workdir = copy_workflow(tmp_path / "run")
    masks = workdir / "only_masks" / "ManualMask" / "leftMask"
    masks.mkdir(parents=True)
    from PIL import Image

    for n in range(3):
        Image.new("L", (32, 32)).save(masks / f"MCUCXR_000{n}_0.png")
    overlay = workdir / "masks_only.yaml"
    overlay.write_text(
        "sources:\n"
        + "".join(f"  {s}: {{enabled: false}}\n" for s in ("jsrt", "scr", "shenzhen", "kermany", "cohen"))
        + "  montgomery: {format: montgomery, path: only_masks}\nsynthetic: {sources: []}\n"
    )
    proc = snakemake(workdir, "--cores", "1", "results/data/index/montgomery.tsv", *CI_CONFIG, str(overlay))
    assert proc.returncode != 0
    log = (workdir / "logs" / "data" / "index_montgomery.log").read_text()
    assert "Traceback (most recent call last)" in log and "SourceLayoutError" in log
    message = "holds 3 MCUCXR_####_[01] mask files but no images"
    assert log.count(message) == 2  # the failure line and the traceback's last line
    assert "logs/data/index_montgomery.log" in proc.stdout + proc.stderr  # where Snakemake sends the user


@pytest.mark.slow
def test_leave_one_source_out_on_the_ci_run_holds_out_each_source_the_others_cover(
    ci_run: Path, tmp_path: Path
) -> None:
    import shutil

    from patchcxr.io import read_tsv

    # the CI run's folder with its results (and Snakemake's records: nothing of it reruns)
    workdir = tmp_path / "run"
    shutil.copytree(ci_run, workdir, symlinks=True)
    (workdir / "loso.yaml").write_text("external: {leave_one_source_out: true, models: [global]}\n")
    # mtime triggers only: the copy moved the folder, and build_manifest's params hold the
    # schema's absolute path (a params trigger would redo the whole run here)
    config = ("--rerun-triggers", "mtime", *CI_CONFIG, TRACKED, "loso.yaml")
    targets = ("stage_external", "results/paper/table13_external.tsv")
    proc = snakemake(workdir, "--cores", "2", *targets, *config)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    ran = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", proc.stdout + proc.stderr, re.M))
    # the plan was made by the CI run (always); only the held-out sources' models run now,
    # and the paper tables, which gain table 13
    external_rules = {"train_external", "predict_external", "evaluate_external", "summarise_external"}
    assert ran - {"stage_external"} == external_rules | {"paper_tables"}
    results = workdir / "results"
    cohort = read_tsv(results / "data" / "cohort.tsv")
    plan = read_tsv(results / "external" / "plan.tsv").set_index("source")
    assert sorted(plan.index) == sorted(set(cohort["source"]))
    held = sorted(plan.index[plan["held_out"] == "1"])
    assert len(held) >= 3
    summary = read_tsv(results / "external" / "summary.tsv", typed=True)
    for source in held:
        # the held-out source is the external model's whole test split, and never trained on
        split = read_tsv(results / "external" / "splits" / f"{source}.tsv")
        films = set(cohort.loc[cohort["source"] == source, "image_id"])
        assert set(split.loc[split["split"] == "test", "image_id"]) == films
        predictions = read_tsv(results / "external" / source / "global" / "predictions.tsv")
        assert set(predictions["image_id"]) == films
        rows = summary[summary["source"] == source].set_index("scheme")
        assert rows.loc["external", "n"] == len(films) and rows.loc["external", "model"] == "global"
        assert {"internal, shared films", "internal, class-matched control"} <= set(rows.index)
        if rows.loc["internal, shared films", "n"] > 0:  # both models on the same films
            assert rows.loc["external, shared films", "n"] == rows.loc["internal, shared films", "n"]
    for source in sorted(set(plan.index) - set(held)):
        assert summary.loc[summary["source"] == source, "note"].iloc[0].startswith("not held out")
    assert (summary["source"] == "all sources").sum() == 1
    # table 13 lists every source; the headline metrics keep the segmentation's Jaccard
    # (the external summary once took the segmentation summary's name there)
    table = read_tsv(results / "paper" / "table13_external.tsv")
    assert set(held) <= set(table["source"])
    headline = json.loads((results / "paper" / "metrics.json").read_text())
    assert headline["segmentation"] and "audit" in headline
    again = snakemake(workdir, "-n", "--cores", "2", *targets, *config)
    assert "Nothing to be done" in again.stdout + again.stderr
