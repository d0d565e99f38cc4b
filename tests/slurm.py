"""A one-node SLURM cluster on localhost for the tests: Debian's slurmctld,
slurmd and munge, started and stopped by .ci/slurm-cluster.sh."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT
from tests.system_packages import apt_install
from tests.workflow_runs import CI_CONFIG

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged"]
SCRIPT = ROOT / ".ci" / "slurm-cluster.sh"
LAUNCHER = Path(__file__).with_name("slurm_snakemake.py")


def missing_reason() -> str | None:
    """Why the cluster cannot run here (installing Debian's packages when they are absent),
    or ``None``."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')"
    if os.path.exists("/etc/slurm/slurm.conf"):
        return "/etc/slurm/slurm.conf exists: this machine has its own SLURM set-up"
    return apt_install(PACKAGES, [*DAEMONS, "/usr/bin/sbatch", "/usr/bin/squeue"])


@dataclass
class WorkflowRun:
    """A run of the CI configuration: where, how (``local`` or ``slurm``), and its log."""

    workdir: Path
    executor: str
    seconds: float = 0.0
    slurm_jobs: int = 0
    output: str = ""
    skip_reason: str = ""


def run_ci_workflow(workdir: Path, extra: tuple[str, ...] = ()) -> WorkflowRun:
    """The CI configuration in ``workdir`` through SLURM where a cluster can be started here,
    else locally (``skip_reason`` says why)."""
    reason = missing_reason()
    if reason is None:
        start = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
        if start.returncode != 0:
            reason = f"the SLURM cluster did not start: {(start.stdout + start.stderr)[-500:]}"
    if reason is not None:
        command = [sys.executable, "-m", "snakemake", "--cores", "2"]
        executor = "local"
    else:
        # snakemake with the plugin's status back-off capped for localhost (tests/slurm_snakemake.py)
        command = [sys.executable, str(LAUNCHER), "--profile", ".test/slurm"]
        executor = "slurm"
    begin = time.monotonic()
    try:
        # timeout -s KILL: a Snakemake waiting on a lost job ignores SIGTERM
        proc = subprocess.run(
            ["timeout", "-s", "KILL", "1500", *command, *CI_CONFIG, *extra],
            cwd=workdir,
            capture_output=True,
            text=True,
        )
    finally:
        if executor == "slurm":
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return WorkflowRun(
        workdir,
        executor,
        time.monotonic() - begin,
        len(set(re.findall(r"SLURM jobid (\d+)", out))),
        out,
        reason or "",
    )
