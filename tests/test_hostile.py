"""Hostile files and commands: model files that would run code, and shells.

Archives that climb out of their folder are cases of the bad-input matrix
(tests/test_bad_inputs.py) and of tests/test_download.py; credentials in the environment
are checked against every output of the CI run (tests/test_workflow.py).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from patchcxr.classification.predict import load_classifier
from patchcxr.io import sha256_file
from patchcxr.models.state import load_state
from patchcxr.models.weights import initialise
from patchcxr.segmentation.predict import load_segmenter
from patchcxr.training import Trainer
from tests.conftest import ROOT


class _RunsCode:
    """Unpickling this object calls ``open(marker, "w")``: any callable could stand there."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A model file whose state dict holds a code-running pickle, and the file it would create."""
    marker = tmp_path / "pwned"
    path = tmp_path / "resnet18-hostile.pth"
    torch.save({"arch": "resnet18", "state_dict": {"fc.weight": _RunsCode(marker)}}, path)
    return path, marker


def _trainer_resume(path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(
        model=model,
        optimizer=opt,
        scheduler=None,
        batches=lambda e: [],
        loss=lambda m, b: torch.zeros(()),
        validate=lambda m: {"s": 0.0},
        select_metric="s",
        epochs=1,
        seed=0,
        resume_path=path,
        fingerprint="f",
    )
    trainer.fit()


LOADERS = {
    "load_state": load_state,
    "segmentation model": load_segmenter,
    "classifier model": load_classifier,
    "ImageNet weights": lambda p: initialise("resnet18", 4, route="file", path=p, sha256=sha256_file(p)),
    "training resume state": _trainer_resume,
}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_model_file_that_would_run_code_is_refused(loader: str, hostile: tuple[Path, Path]) -> None:
    path, marker = hostile
    with pytest.raises(ValueError, match=r"not a plain weights file \(UnpicklingError: Weights only load failed"):
        LOADERS[loader](path)
    assert not marker.exists()


def test_the_triage_command_refuses_it_too(tmp_path: Path, hostile: tuple[Path, Path]) -> None:
    path, marker = hostile
    proc = subprocess.run(
        [sys.executable, "-m", "patchcxr.cli", "predict", "x.png", "--segmenter", str(path), "--classifier", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert (
        proc.returncode == 2 and "cannot load the models" in proc.stderr and "not a plain weights file" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


# ------------------------------------------------------------------------ no shells
PYTHON = sorted(
    [*(ROOT / "src").rglob("*.py"), *(ROOT / "workflow" / "scripts").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
)
SHELL_CALLS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput", "pty.spawn"}
PROCESS_CALLS = {
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_no_python_code_runs_a_shell() -> None:
    """No ``shell=True``, no ``os.system``/``os.popen``; every subprocess gets an argument list
    (so no string from a configuration or a file name is ever parsed by a shell)."""
    assert len(PYTHON) > 30
    problems = []
    for path in PYTHON:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name, where = _dotted(node.func), f"{path.relative_to(ROOT)}:{node.lineno}"
            if name in SHELL_CALLS:
                problems.append(f"{where}: {name}")
            if any(
                k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords
            ):
                problems.append(f"{where}: shell=")
            if name in PROCESS_CALLS and node.args and not isinstance(node.args[0], (ast.List, ast.Tuple)):
                problems.append(f"{where}: {name} without an argument list")
    assert not problems, problems


def test_no_rule_runs_a_shell_command() -> None:
    """Every rule runs a Python script (``script:``) with its inputs as Python objects: no
    ``shell:`` or ``run:`` block formats paths or configuration values into a command line."""
    files = [ROOT / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]
    directives = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines(), start=1)
        if re.match(r"\s+(shell|run):", line)
    ]
    assert not directives, directives
    assert sum(p.read_text().count("script:") for p in files) >= 20
