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
import re
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


#: MLflow parameter names allow alphanumerics, ``_ - . : /`` and spaces (config keys such as
#: the finding "COVID-19, ARDS" do not); values are limited to 6000 characters
_PARAM_NAME = re.compile(r"[^\w\-. :/]")
_PARAM_VALUE_MAX = 6000


def _flatten(prefix: str, obj: Any, out: dict[str, str]) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            key = _PARAM_NAME.sub("_", str(k))
            _flatten(f"{prefix}.{key}" if prefix else key, v, out)
    else:
        value = json.dumps(obj) if isinstance(obj, list | tuple) else str(obj)
        out[prefix] = value if len(value) <= _PARAM_VALUE_MAX else value[: _PARAM_VALUE_MAX - 3] + "..."


class MlflowTracker:
    """Per-epoch metrics into an active MLflow run."""

    def __init__(self, mlflow: Any) -> None:
        self._mlflow = mlflow

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._mlflow.log_metrics(dict(metrics), step=step)

    def log_artifact(self, path: Path | str) -> None:
        self._mlflow.log_artifact(str(path))

    def log_table_metrics(self, metrics: Mapping[str, float]) -> None:
        """Final metrics of an evaluation, keys sanitised as parameter names are."""
        clean = {_PARAM_NAME.sub("_", k): float(v) for k, v in metrics.items()}
        self._mlflow.log_metrics(clean)


def data_version(manifest: Path | str) -> str:
    """The data version: ``manifest-`` and the first 16 hex digits of the manifest's sha256.

    The manifest lists every image with its own sha256, so this one digest names the exact
    data a run saw, as DVC's content-addressed cache names an output.
    """
    return f"manifest-{sha256_file(manifest)[:16]}"


def provenance(inputs: Mapping[str, Path | str]) -> dict[str, str]:
    """What made a run: git commit, the sha256 of each named input file, and the data
    version (from the input named ``manifest``, when given)."""
    out = {"git_commit": git_commit(), "patchcxr_version": __version__}
    out |= {f"sha256.{name}": sha256_file(path) for name, path in sorted(inputs.items())}
    if "manifest" in inputs:
        out["data_version"] = data_version(inputs["manifest"])
    return out


def run_settings(
    tracking: Mapping[str, Any], pipeline_file: Path | str | None, inputs: Mapping[str, Path | str], *, rule: str = ""
) -> dict[str, Any]:
    """Config ``tracking`` completed for one job: the pipeline run to nest under (from the
    file rule ``start_pipeline_run`` wrote), the provenance of the job's inputs and the rule
    that runs it (the run's source in the MLflow UI)."""
    out = dict(tracking)
    if not out.get("enabled", True):
        return out
    if rule:
        out["rule"] = rule
    if pipeline_file:
        out["parent_run_id"] = json.loads(Path(pipeline_file).read_text())["run_id"]
    out["provenance"] = provenance(inputs)
    return out


#: the experiment tag with which the MLflow UI (3.x) opens an experiment in its classic runs
#: view (model training) instead of its GenAI view
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def _connect(settings: Mapping[str, Any]) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(settings.get("uri", "sqlite:///mlflow.db"))
    experiment = mlflow.set_experiment(settings.get("experiment", "patchcxr"))
    if EXPERIMENT_KIND[0] not in experiment.tags:
        mlflow.set_experiment_tag(*EXPERIMENT_KIND)
    return mlflow


def source_tags(rule: str) -> dict[str, str]:
    """The run's source as the MLflow UI shows it: the Snakemake rule (not the temporary
    file Snakemake runs a script from)."""
    if not rule:
        return {"mlflow.source.name": "Snakefile", "mlflow.source.type": "JOB"}
    return {"mlflow.source.name": f"rule {rule}", "mlflow.source.type": "JOB", "patchcxr.rule": rule}


def _param_batches(params: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """``params`` flattened into ``section.key`` parameters, 100 at a time (MLflow takes at
    most 100 per call)."""
    flat: dict[str, str] = {}
    _flatten("", params, flat)
    items = list(flat.items())
    for i in range(0, len(items), 100):
        yield dict(items[i : i + 100])


def _log_params(mlflow: Any, params: Mapping[str, Any]) -> None:
    for batch in _param_batches(params):
        mlflow.log_params(batch)


def start_pipeline_run(settings: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, str]:
    """Open the parent run of one pipeline configuration and leave it running: every
    training and evaluation run of the workflow is nested under it (MLflow's
    ``mlflow.parentRunId`` tag, which needs no active parent: jobs run in other processes,
    or on other nodes), and :func:`end_pipeline_run` closes it when the workflow ends, so
    the parent spans the pipeline."""
    mlflow = _connect(settings)
    from mlflow.entities import Param

    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(settings.get("experiment", "patchcxr"))
    tags = {"patchcxr.stage": "pipeline"} | source_tags("start_pipeline_run")
    # created, not started: the run stays RUNNING until end_pipeline_run closes it
    run = client.create_run(experiment.experiment_id, tags=tags, run_name="pipeline")
    for batch in _param_batches({"config": config, "provenance": {"git_commit": git_commit()}}):
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in batch.items()])
    info = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": mlflow.get_tracking_uri(),
    }
    log.info("MLflow pipeline run %s at %s", info["run_id"], info["tracking_uri"])
    return info


def end_pipeline_run(pipeline_file: Path | str, *, failed: bool = False) -> str | None:
    """Close the pipeline's parent run when the workflow ends (Snakemake's ``onsuccess`` /
    ``onerror``): its end time becomes now, its status FINISHED or FAILED. A later
    invocation of the same configuration closes it again, with its own end time and status.
    Returns the run id, or None where the workflow opened no parent run (tracking off)."""
    path = Path(pipeline_file)
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=info["tracking_uri"])
    client.set_terminated(info["run_id"], status="FAILED" if failed else "FINISHED")
    log.info("MLflow pipeline run %s closed (%s)", info["run_id"], "FAILED" if failed else "FINISHED")
    return str(info["run_id"])


@contextmanager
def mlflow_run(
    settings: Mapping[str, Any], run_name: str, params: Mapping[str, Any], run_id_file: Path | None = None
) -> Iterator[MlflowTracker | None]:
    """An MLflow run (or ``None`` when tracking is off).

    Args:
        settings: config ``tracking`` (``enabled``, ``uri``, ``experiment``), completed by
            :func:`run_settings` with ``parent_run_id`` (the run nests under it) and
            ``provenance`` (logged as ``provenance.*`` parameters and tags).
        run_name: the run's name; also the ``patchcxr.stage`` tag.
        params: flattened into ``section.key`` parameters.
        run_id_file: where the run id is kept while the job may be resumed: a resumed
            training continues its own run instead of opening a second one.
    """
    if not settings.get("enabled", True):
        yield None
        return
    mlflow = _connect(settings)
    run_id = run_id_file.read_text().strip() if run_id_file is not None and run_id_file.is_file() else None
    tags = {"patchcxr.stage": run_name} | source_tags(str(settings.get("rule", "")))
    if settings.get("parent_run_id"):
        tags["mlflow.parentRunId"] = str(settings["parent_run_id"])
    prov = dict(settings.get("provenance") or {})
    tags |= {f"patchcxr.{k}": v for k, v in prov.items() if k in ("git_commit", "data_version")}
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, tags=None if run_id else tags) as run:
        if run_id_file is not None:
            atomic_write_text(run_id_file, run.info.run_id)
        if run_id is None:
            _log_params(mlflow, {**params, "provenance": prov} if prov else params)
        log.info("MLflow run %s (%s) at %s", run.info.run_id, run_name, mlflow.get_tracking_uri())
        yield MlflowTracker(mlflow)
