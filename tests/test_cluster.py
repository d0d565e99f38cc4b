"""The workflow on a real SLURM cluster (tooling.md §3): Debian's slurmctld, slurmd and
munge started on localhost by .ci/slurm-cluster.sh, the CI configuration submitted through
snakemake-executor-plugin-slurm, outputs compared with a local run's."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.system_packages import apt_install
from tests.workflow_runs import CI_CONFIG, copy_workflow, reproducible_digest, snakemake

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged"]
SCRIPT = ROOT / ".ci" / "slurm-cluster.sh"


def missing_reason() -> str | None:
    """Why the cluster cannot run here (installing Debian's packages when they are absent),
    or ``None``."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')"
    if os.path.exists("/etc/slurm/slurm.conf"):
        return "/etc/slurm/slurm.conf exists: this machine has its own SLURM set-up"
    return apt_install(PACKAGES, [*DAEMONS, "/usr/bin/sbatch", "/usr/bin/squeue"])


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    start = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        yield
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_ci_workflow_through_slurm_equals_the_local_run(
    slurm_cluster: None, ci_run: Path, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    work = copy_workflow(tmp_path / "slurm")
    begin = time.monotonic()
    # timeout -s KILL: a Snakemake waiting on a lost job ignores SIGTERM (tooling.md §3)
    proc = subprocess.run(
        ["timeout", "-s", "KILL", "900", sys.executable, "-m", "snakemake", "--profile", ".test/slurm", *CI_CONFIG],
        cwd=work,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - begin
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    job_ids = set(re.findall(r"SLURM jobid (\d+)", out))
    record_property("slurm_seconds", round(seconds, 1))
    record_property("slurm_jobs", len(job_ids))
    # every job that ran went through sbatch (the `all`-like target rules run nowhere)
    done = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", out)
    assert len(job_ids) >= 30 and len(job_ids) == len([r for r in done if not r.startswith(("all", "stage_"))])
    assert reproducible_digest(work) == reproducible_digest(ci_run)
    # the cluster profile for real sites parses and plans the same jobs
    dry = snakemake(work, "-n", "--profile", "profiles/slurm", *CI_CONFIG)
    assert dry.returncode == 0, dry.stderr[-2000:]
