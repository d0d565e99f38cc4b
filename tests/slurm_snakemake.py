"""``python tests/slurm_snakemake.py ARGS`` = ``snakemake ARGS`` with the SLURM plugin's
status back-off capped, for the one-node test cluster (tests/slurm.py) only.

snakemake-executor-plugin-slurm 2.8.0 adds 10 s to the pause between two status queries
after every round in which no job finished (up to 180 s): sensible for a busy site's
controller, but on localhost, where squeue answers in milliseconds, a 60 s job was noticed
up to 45 s late and the CI run of ~40 short jobs spent most of its time asleep. The cap
changes when Snakemake looks, never what it submits or how it reads a job's state, so the
test still proves the workflow through sbatch/squeue. Real sites use profiles/slurm and the
plugin as it ships.
"""

from __future__ import annotations

import sys

from snakemake_executor_plugin_slurm import Executor
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

CAP_SECONDS = 3.0
_interval = RemoteExecutor.next_seconds_between_status_checks


def _capped(self: RemoteExecutor, value: float) -> None:
    _interval.fset(self, min(value, CAP_SECONDS))  # type: ignore[misc]


Executor.next_seconds_between_status_checks = property(_interval.fget, _capped)  # type: ignore[assignment]

if __name__ == "__main__":
    from snakemake.cli import main

    sys.exit(main())
