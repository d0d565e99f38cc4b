"""The workflow as a user runs it: dry run of the demo, a real run of the CI configuration."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_synthetic_determinism import tree_digest

WORKFLOW_FILES = ["Snakefile", "workflow", "config", ".test", "profiles", "envs"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True, timeout=600
    )


def copy_workflow(dest: Path) -> Path:
    """The workflow's files in a fresh folder: runs there do not see this checkout's results."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def test_demo_dry_run_lists_every_synthetic_source(tmp_path: Path) -> None:
    proc = snakemake(
        copy_workflow(tmp_path), "-n", "--cores", "2", "--configfile", "config/config.yaml", "config/demo.yaml"
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert re.search(r"make_synthetic\s+6\n", out)
    assert re.search(r"train_segmentation\s+4\n", out)  # 2 networks x with/without preprocessing
    for source in ("jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen"):
        assert f"results/synthetic/{source}" in out


def test_paper_config_without_jsrt_stops_early_with_registration_advice(tmp_path: Path) -> None:
    # the paper's configuration needs a registered JSRT copy in resources/raw/jsrt
    proc = snakemake(copy_workflow(tmp_path), "-n", "--cores", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "http://db.jsrt.or.jp/eng.php" in out and "sources.jsrt.path" in out
    assert "Job stats" not in out


@pytest.mark.slow
def test_ci_workflow_runs_and_matches_the_package(tmp_path: Path, synthetic_tree: Path) -> None:
    copy_workflow(tmp_path)
    proc = snakemake(tmp_path, "--cores", "2", "--configfile", "config/config.yaml", ".test/config.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for source in ("jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen"):
        made = {
            k: v for k, v in tree_digest(tmp_path / "results" / "synthetic" / source).items() if ".snakemake" not in k
        }
        assert made == tree_digest(synthetic_tree / source)
        assert (tmp_path / "logs" / "synthetic" / f"{source}.log").read_text().strip()
    # the data stage ran from the synthetic sources: manifest, quarantine, cohort, splits
    from patchcxr.data.harmonise import read_tsv
    from patchcxr.data.splits import check_disjoint

    manifest = read_tsv(tmp_path / "results" / "data" / "manifest.tsv")
    assert set(manifest["source"]) == {"jsrt", "montgomery", "shenzhen", "kermany", "cohen"}
    quarantine = read_tsv(tmp_path / "results" / "data" / "quarantine.tsv")
    assert quarantine["reason"].str.startswith("excluded view").sum() == 1  # the lateral film
    for name in ("classification", "segmentation"):
        split = read_tsv(tmp_path / "results" / "splits" / f"{name}.tsv")
        assert len(split) and set(split["split"]) <= {"train", "val", "test"}
        check_disjoint(split, manifest)
    # several harmonisation shards per source, never one job per image
    shards = list((tmp_path / "results" / "data" / "shards" / "cohen").glob("*.tsv"))
    assert 1 < len([s for s in shards if "quarantine" not in s.name]) < len(manifest[manifest["source"] == "cohen"])
    # segmentation: every network evaluated, a mask and a QC row for every manifest image
    summary = read_tsv(tmp_path / "results" / "segmentation" / "summary.tsv")
    assert {f"{m}" for m in summary["model"]} == {"fcdensenet_tiny", "unet_tiny"}
    assert set(summary["preprocessing"]) == {"equalised", "minmax"}
    assert (tmp_path / "results" / "segmentation" / "figures" / "jaccard.png").stat().st_size > 1000
    qc = read_tsv(tmp_path / "results" / "masks" / "qc.tsv")
    assert sorted(qc["image_id"]) == sorted(manifest["image_id"])
    assert all((tmp_path / p).is_file() for p in qc["mask_path"])
    meta = (tmp_path / "results" / "segmentation" / "unet_tiny" / "equalised" / "metadata.json").read_text()
    assert '"manifest"' in meta and '"segmentation_split"' in meta
    # biomarkers: features for the cohort, the tests table and the four figures
    features = read_tsv(tmp_path / "results" / "biomarkers" / "features.tsv")
    cohort = read_tsv(tmp_path / "results" / "data" / "cohort.tsv")
    assert sorted(features["image_id"]) == sorted(cohort["image_id"])
    tests = read_tsv(tmp_path / "results" / "biomarkers" / "tests.tsv")
    assert {"kruskal-wallis", "anova", "mann-whitney", "welch-t"} <= set(tests["test"])
    for fig in ("features", "ctr_scatter", "histograms", "examples"):
        assert (tmp_path / "results" / "biomarkers" / "figures" / f"{fig}.png").stat().st_size > 1000
    # classification: both classifiers trained, evaluated and compared
    for model in ("local", "global"):
        metrics = read_tsv(tmp_path / "results" / "evaluation" / model / "metrics.tsv")
        assert {"precision", "recall", "f1", "specificity"} <= set(metrics["metric"])
        predictions = read_tsv(tmp_path / "results" / "evaluation" / model / "predictions.tsv")
        test_ids = read_tsv(tmp_path / "results" / "splits" / "classification.tsv").query("split == 'test'")["image_id"]
        assert sorted(predictions["image_id"]) == sorted(test_ids)
        assert (tmp_path / "results" / "evaluation" / model / "confusion.png").is_file()
    assert (tmp_path / "results" / "evaluation" / "global_vs_local.tsv").is_file()
    saliency = read_tsv(tmp_path / "results" / "saliency" / "local" / "saliency.tsv")
    for image_id in saliency["image_id"]:
        assert (tmp_path / "results" / "saliency" / "local" / "maps" / f"{image_id}.png").is_file()
    # a second run has nothing to do
    again = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", "config/config.yaml", ".test/config.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr
    # ... also when the overlay is given alone (config.yaml comes from the Snakefile):
    # params are compared key-order-independently
    alone = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", ".test/config.yaml")
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
