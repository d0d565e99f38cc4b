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
