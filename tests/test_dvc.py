"""DVC over the workflow (tooling.md §5): `dvc repro` through the stage targets, metrics and
plots, push to a remote, and a fresh clone that pulls the results and — after
`snakemake --touch` — has nothing left to run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_synthetic_determinism import tree_digest
from tests.workflow_runs import CI_CONFIG, copy_workflow, snakemake

ENV = {
    **os.environ,
    # the stages call `snakemake`: the one next to this interpreter
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.invalid",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.invalid",
}


def run(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def dvc(cwd: Path, *args: str) -> str:
    return run(cwd, str(Path(sys.executable).with_name("dvc")), *args)


@pytest.mark.slow
def test_dvc_repro_push_and_pull_into_a_fresh_clone(ci_run: Path, tmp_path: Path) -> None:
    repo = copy_workflow(tmp_path / "repo")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    (repo / ".dvc").mkdir()
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    remote = tmp_path / "remote"
    (repo / "params.yaml").write_text("snakemake:\n  configfiles: " + " ".join(CI_CONFIG[1:]) + "\n  cores: 2\n")
    # the results of the CI run, with their modification times (Snakemake: up to date)
    shutil.copytree(ci_run / "results", repo / "results", ignore=shutil.ignore_patterns("tracking"))
    run(repo, "git", "init", "-q")
    dvc(repo, "remote", "modify", "local", "url", str(remote))
    dvc(repo, "repro")
    status = dvc(repo, "status")
    assert "up to date" in status
    metrics = dvc(repo, "metrics", "show", "--json")
    assert json.loads(metrics)  # the headline numbers of results/paper/metrics.json
    assert "macro_f1" in metrics
    dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "local classifier training" in html and "confusion" in html
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "results")
    assert "pushed" in dvc(repo, "push")

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "results" / "paper").exists()
    dvc(clone, "pull")
    for stage in ("data", "segmentation", "masks", "classification", "evaluation", "paper"):
        assert tree_digest(clone / "results" / stage) == tree_digest(repo / "results" / stage), stage
    # pulled files carry new modification times in no particular order, and the clone has
    # no .snakemake metadata: `snakemake --touch` marks the pulled results up to date
    touched = snakemake(clone, "--touch", "--cores", "1", "paper", *CI_CONFIG)
    assert touched.returncode == 0, touched.stderr[-3000:]
    fresh = snakemake(clone, "-n", "--cores", "1", "paper", *CI_CONFIG)
    assert "Nothing to be done" in fresh.stdout + fresh.stderr, fresh.stdout[-3000:]
    assert "up to date" in dvc(clone, "status")
