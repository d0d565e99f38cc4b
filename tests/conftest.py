"""Shared fixtures: validated configurations and a synthetic data tree built once per session."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "cxr-sample"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Key-by-key merge, as Snakemake merges several --configfile overlays."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*overlays: str | Path) -> dict[str, Any]:
    """config/config.yaml merged with ``overlays`` and validated with the workflow's schema."""
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for path in overlays:
        cfg = merge(cfg, yaml.safe_load((ROOT / path).read_text()))
    validate(cfg, str(SCHEMA))
    return cfg


@pytest.fixture(scope="session")
def test_config() -> dict[str, Any]:
    return load_config(".test/config.yaml")


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory: pytest.TempPathFactory, test_config: dict[str, Any]) -> Path:
    """Every synthetic source of the CI configuration, as `make_synthetic` writes them."""
    from patchcxr.synthetic import SOURCES, generate_source

    root = tmp_path_factory.mktemp("synthetic")
    for source in SOURCES:
        generate_source(source, test_config["synthetic"], root / source, root / "ground_truth" / source)
    return root


@pytest.fixture(scope="session")
def synthetic_manifest(
    tmp_path_factory: pytest.TempPathFactory, synthetic_tree: Path, test_config: dict[str, Any]
) -> tuple[Any, Any, Path]:
    """Manifest and quarantine of the whole synthetic tree, and the output folder."""
    from tests.helpers import run_data_stage, synthetic_sources

    out = tmp_path_factory.mktemp("data")
    manifest, quarantine = run_data_stage(synthetic_sources(synthetic_tree), test_config["labels"], out)
    return manifest, quarantine, out


#: the CI configuration with MLflow tracking on, into the run's own SQLite store
TRACKED = "tracking.yaml"
#: dummy credentials in the CI run's environment: none may appear in any output
DUMMY_SECRETS = {"KAGGLE_USERNAME": "ci-dummy-user-5b1e", "KAGGLE_KEY": "ci-dummy-secret-9f3c1a7d"}


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the whole workflow on the CI configuration (tracked in MLflow), shared by
    the tests that inspect its outputs. Returns the run's folder; pass
    ``*CI_CONFIG, TRACKED`` to further snakemake calls there."""
    from tests.workflow_runs import CI_CONFIG, copy_workflow, snakemake

    workdir = copy_workflow(tmp_path_factory.mktemp("ci_run"))
    (workdir / TRACKED).write_text(
        f"tracking: {{enabled: true, uri: 'sqlite:///{workdir}/mlflow.db', experiment: ci}}\n"
    )
    import os

    proc = snakemake(workdir, "--cores", "2", *CI_CONFIG, TRACKED, env={**os.environ, **DUMMY_SECRETS})
    assert proc.returncode == 0, proc.stderr[-4000:]
    (workdir / "snakemake.out").write_text(proc.stdout + proc.stderr)
    return workdir


@pytest.fixture(scope="session")
def second_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A second clean run of the CI configuration, in a fresh folder and untracked: through a
    one-node SLURM cluster where one can be started here (tests/slurm.py), else locally. The
    reproducibility test and the cluster test share it (one run instead of two in CI)."""
    from tests.slurm import run_ci_workflow
    from tests.workflow_runs import copy_workflow

    return run_ci_workflow(copy_workflow(tmp_path_factory.mktemp("second_run")))
