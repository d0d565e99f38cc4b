"""Experiment tracking (MLflow) and artefact metadata.

Every trained model is saved with a ``metadata.json`` that says what made it: the
configuration, the sha256 of the manifest and split files, the code version (package
version and git commit) and the library versions. The same facts go to MLflow as run
parameters, so a run in the MLflow UI and a file on disk can be matched.

MLflow is imported lazily (about a second): tests and dry runs that do not track pay
nothing. Credentials never appear here: only configuration values chosen by the user are
logged.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchcxr import __version__
from patchcxr.io import atomic_write_text, sha256_file

log = logging.getLogger(__name__)


def git_commit(cwd: Path | str | None = None) -> str:
    """The checkout's commit (``+dirty`` when it has changes), or ``""`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "numpy", "scipy", "pandas", "pillow", "scikit-image", "snakemake", "mlflow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = ""
    return out


def artefact_metadata(config: Mapping[str, Any], inputs: Mapping[str, Path | str], **extra: Any) -> dict[str, Any]:
    """Metadata of a trained artefact.

    Args:
        config: the configuration that made it (the sections that matter).
        inputs: named input files whose sha256 identify the data (manifest, split).
        extra: anything else (architecture, best epoch, …).
    """
    return {
        "patchcxr_version": __version__,
        "git_commit": git_commit(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "inputs_sha256": {name: sha256_file(path) for name, path in inputs.items()},
        "libraries": library_versions(),
        **extra,
    }


def write_metadata(path: Path | str, metadata: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")


def _flatten(prefix: str, obj: Any, out: dict[str, str]) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(obj) if isinstance(obj, list | tuple) else str(obj)


class MlflowTracker:
    """Per-epoch metrics into an active MLflow run."""

    def __init__(self, mlflow: Any) -> None:
        self._mlflow = mlflow

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._mlflow.log_metrics(dict(metrics), step=step)

    def log_artifact(self, path: Path | str) -> None:
        self._mlflow.log_artifact(str(path))


@contextmanager
def mlflow_run(
    settings: Mapping[str, Any], run_name: str, params: Mapping[str, Any], run_id_file: Path | None = None
) -> Iterator[MlflowTracker | None]:
    """An MLflow run (or ``None`` when tracking is off).

    Args:
        settings: config ``tracking`` (``enabled``, ``uri``, ``experiment``).
        run_name: the run's name.
        params: flattened into ``section.key`` parameters.
        run_id_file: where the run id is kept while the job may be resumed: a resumed
            training continues its own run instead of opening a second one.
    """
    if not settings.get("enabled", True):
        yield None
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(settings.get("uri", "sqlite:///mlflow.db"))
    mlflow.set_experiment(settings.get("experiment", "patchcxr"))
    run_id = run_id_file.read_text().strip() if run_id_file is not None and run_id_file.is_file() else None
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name) as run:
        if run_id_file is not None:
            atomic_write_text(run_id_file, run.info.run_id)
        if run_id is None:
            flat: dict[str, str] = {}
            _flatten("", params, flat)
            for i in range(0, len(flat), 100):  # MLflow takes at most 100 params per call
                mlflow.log_params(dict(list(flat.items())[i : i + 100]))
        log.info("MLflow run %s (%s) at %s", run.info.run_id, run_name, mlflow.get_tracking_uri())
        yield MlflowTracker(mlflow)
