"""Faults: the workflow SIGKILLed during segmentation training, mask generation and
classifier training, then rerun, ends with the tables of an uninterrupted run.

The jobs of the CI configuration take a fraction of a second, so a timer cannot be sure
to hit them: the run is started with ``PATCHCXR_FAULT_AT`` (src/patchcxr/faults.py), the
job hangs at the named point, and the test kills the whole process group (Snakemake and
its jobs) with SIGKILL at that moment.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patchcxr.faults import FAULT_AT, FAULT_MARKER
from patchcxr.models.state import load_state
from tests.workflow_runs import CI_CONFIG, copy_workflow, reproducible_digest, snakemake

pytestmark = pytest.mark.slow

# the CI configuration cross-fits its segmenters: the first seed's first fold
SEG = "results/segmentation/fcdensenet_tiny/equalised/seed_407-f0"


def _run_until_fault(workdir: Path, point: str, timeout: float = 600) -> str:
    """Run the workflow until a job reaches ``point``, then SIGKILL every process of the
    run; returns the run's output."""
    marker = workdir / f"fault-{point.replace(':', '_').replace('/', '_').replace('@', '_')}"
    env = {**os.environ, FAULT_AT: point, FAULT_MARKER: str(marker)}
    out = workdir / (marker.name + ".out")
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "2", *CI_CONFIG],
            cwd=workdir,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Snakemake and every job
        )
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert proc.poll() is None, f"the run ended before {point}:\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{point} not reached in {timeout} s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return out.read_text()


def test_a_fault_point_hangs_only_where_it_is_named(tmp_path: Path) -> None:
    code = (
        "from patchcxr.faults import fault_point as f\n"
        "f('epoch:1', 'x/seg/a'); f('epoch:2', 'x/cls/a'); f('epoch:2', 'x/seg/a')"
    )
    marker = tmp_path / "marker"
    env = {**os.environ, FAULT_AT: "epoch:2@seg/", FAULT_MARKER: str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "epoch:2@x/seg/a\n"  # the first two calls passed
    time.sleep(0.5)
    assert proc.poll() is None  # hanging, to be killed
    proc.kill()
    proc.wait()
    # without the variable, every point returns at once
    plain = subprocess.run(
        [sys.executable, "-c", code], env={k: v for k, v in os.environ.items() if k != FAULT_AT}, timeout=60
    )
    assert plain.returncode == 0


def _unlock(workdir: Path) -> None:
    """A killed Snakemake leaves its lock: the next run refuses until ``--unlock``."""
    locked = snakemake(workdir, "--cores", "2", *CI_CONFIG)
    assert locked.returncode != 0 and "cannot be locked" in locked.stderr + locked.stdout
    assert snakemake(workdir, "--unlock", *CI_CONFIG).returncode == 0


def test_sigkill_during_training_and_mask_generation_then_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, ci_run: Path
) -> None:
    workdir = copy_workflow(tmp_path / "killed")

    # 1. segmentation training: killed after epoch 1 of 2 saved its resume state
    _run_until_fault(workdir, f"epoch:1@{SEG}")
    assert not (workdir / SEG / "model.pt").exists()
    assert load_state(workdir / SEG / "resume" / "state.pt")["epoch"] == 1
    _unlock(workdir)

    # 2. mask generation: killed after the third mask of shard 0 was written
    _run_until_fault(workdir, "mask:3@masks/shards/0")
    log = (workdir / "logs" / "segmentation" / "train_fcdensenet_tiny_equalised_seed_407-f0.log").read_text()
    assert "resuming after epoch 1" in log  # the rerun resumed rather than restarted
    shard = workdir / "results" / "masks" / "shards" / "0"
    assert len(list((shard / "masks").rglob("*.png"))) == 3 and not (shard.parent / "0.tsv").exists()
    # Snakemake holds the half-written folder for incomplete (the project's default profile
    # sets rerun-incomplete: the next run deletes and redoes it rather than stopping)
    incomplete = {base64.b64decode(p.name).decode() for p in (workdir / ".snakemake" / "incomplete").iterdir()}
    assert "results/masks/shards/0" in incomplete
    _unlock(workdir)

    # 3. classifier training: killed after the second training step of epoch 1
    out = _run_until_fault(workdir, "step:1:2@classification/local/seed_2020")
    assert re.search(r"localrule predict_masks:\n(.*\n){1,6}\s+wildcards: shard=0", out), out[-3000:]
    assert not (workdir / "results" / "classification" / "local" / "seed_2020" / "model.pt").exists()
    _unlock(workdir)

    # 4. the rerun completes the stages the kills interrupted, up to the evaluation (the
    # audit's probes use the trainer resumed here, the paper reads finished tables; CI
    # time); its tables equal those of the uninterrupted CI run
    done = snakemake(workdir, "--cores", "2", "stage_evaluation", *CI_CONFIG)  # profiles/default: rerun-incomplete
    assert done.returncode == 0, done.stderr[-4000:]
    digest = reproducible_digest(workdir)
    assert len(digest) >= 25 and any(k.startswith("evaluation/") for k in digest)
    uninterrupted = reproducible_digest(ci_run)
    assert digest == {k: uninterrupted[k] for k in digest}
