"""What goes to MLflow: parameter names it accepts, bounded values, provenance."""

from __future__ import annotations

from pathlib import Path

from patchcxr.io import sha256_file
from patchcxr.tracking import _flatten, provenance, run_settings


def test_config_keys_become_valid_mlflow_parameter_names() -> None:
    out: dict[str, str] = {}
    cfg = {"labels": {"findings": {"COVID-19, ARDS": "covid19"}}, "k": [1, 2], "long": "x" * 7000}
    _flatten("", cfg, out)
    assert out["labels.findings.COVID-19_ ARDS"] == "covid19"  # the comma is not allowed
    assert out["k"] == "[1, 2]"
    assert len(out["long"]) == 6000 and out["long"].endswith("...")


def test_provenance_names_each_input_and_the_data_version(tmp_path: Path) -> None:
    (tmp_path / "m.tsv").write_text("image_id\na\n")
    (tmp_path / "s.tsv").write_text("image_id\tsplit\na\ttrain\n")
    prov = provenance({"manifest": tmp_path / "m.tsv", "split": tmp_path / "s.tsv"})
    assert prov["sha256.manifest"] == sha256_file(tmp_path / "m.tsv")
    assert prov["sha256.split"] == sha256_file(tmp_path / "s.tsv")
    assert prov["data_version"] == "manifest-" + sha256_file(tmp_path / "m.tsv")[:16]
    assert "git_commit" in prov and prov["patchcxr_version"]
    # tracking off: nothing is computed, nothing is opened
    assert run_settings({"enabled": False}, None, {"manifest": tmp_path / "missing"}) == {"enabled": False}


def test_the_pipeline_run_spans_its_jobs_and_every_run_names_its_rule(tmp_path: Path) -> None:
    """The parent run stays open while jobs run and is closed by the workflow's end; the
    experiment opens in MLflow's classic runs view; each run's source is its rule."""
    import json

    import mlflow

    from patchcxr.tracking import EXPERIMENT_KIND, end_pipeline_run, mlflow_run, start_pipeline_run

    settings = {"enabled": True, "uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "t"}
    info = start_pipeline_run(settings, {"a": {"b": 1}})
    (tmp_path / "pipeline.json").write_text(json.dumps(info))
    client = mlflow.MlflowClient(tracking_uri=settings["uri"])
    parent = client.get_run(info["run_id"])
    assert parent.info.status == "RUNNING" and parent.info.end_time is None
    assert parent.data.params["config.a.b"] == "1"
    assert client.get_experiment(info["experiment_id"]).tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]
    child_settings = run_settings(settings, tmp_path / "pipeline.json", {}, rule="train_classifier")
    with mlflow_run(child_settings, "classifier-local-seed_1", {"x": 1}):
        pass
    [child] = client.search_runs([info["experiment_id"]], "tags.patchcxr.stage = 'classifier-local-seed_1'")
    assert child.data.tags["mlflow.source.name"] == "rule train_classifier"
    assert child.data.tags["mlflow.parentRunId"] == info["run_id"]
    assert end_pipeline_run(tmp_path / "pipeline.json") == info["run_id"]
    parent = client.get_run(info["run_id"])
    assert parent.info.status == "FINISHED" and parent.info.end_time >= child.info.end_time
    assert parent.data.tags["mlflow.source.name"] == "rule start_pipeline_run"
    end_pipeline_run(tmp_path / "pipeline.json", failed=True)
    assert client.get_run(info["run_id"]).info.status == "FAILED"
    assert end_pipeline_run(tmp_path / "absent.json") is None
