"""Conda environments: each parses, pins exactly, and agrees with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

# conda-forge names of PyPI distributions, where they differ
CONDA_NAME = {"torch": "pytorch", "pyyaml": "pyyaml"}
ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        name, version = dep.split("==")
        pins[CONDA_NAME.get(name.lower(), name.lower())] = version
    return pins


def test_every_rule_env_exists() -> None:
    named = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for rel in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            named.add((smk.parent / rel).resolve())
    assert named, "no rule names a conda environment"
    assert named <= {p.resolve() for p in ENVS}


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_match_pyproject(env: Path) -> None:
    spec = yaml.safe_load(env.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    pins = pyproject_pins()
    conda_deps = [d for d in spec["dependencies"] if isinstance(d, str) and d not in ("pip",)]
    assert conda_deps
    for dep in conda_deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+) =(\S+)", dep)
        assert m, f"{env.name}: {dep!r} is not an exact pin 'name =version'"
        name, version = m.groups()
        if name == "python":
            assert version == "3.11"
            continue
        assert name in pins, f"{env.name}: {name} is not a dependency in pyproject.toml"
        assert version == pins[name], f"{env.name}: {name} {version} != pyproject {pins[name]}"
    # every env installs the package itself
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    assert "-e .." in pip
