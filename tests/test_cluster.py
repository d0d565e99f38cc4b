"""The workflow on a real SLURM cluster: Debian's slurmctld, slurmd and
munge started on localhost by .ci/slurm-cluster.sh, the CI configuration submitted through
snakemake-executor-plugin-slurm (the session's second clean run, tests/slurm.py), outputs
compared with the local run's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.workflow_runs import CI_CONFIG, reproducible_digest, snakemake


@pytest.mark.slow
def test_ci_workflow_through_slurm_equals_the_local_run(
    second_run: Any, ci_run: Path, record_property: pytest.RecordProperty
) -> None:
    if second_run.executor != "slurm":
        pytest.skip(second_run.skip_reason)
    record_property("slurm_seconds", round(second_run.seconds, 1))
    record_property("slurm_jobs", second_run.slurm_jobs)
    # every job went through sbatch but those of the Snakefile's localrules (a table or a
    # file copy each, run by the submitting Snakemake) and the target rules, which run nowhere
    done = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", second_run.output)
    local = set(re.findall(r"^local(?:rule|checkpoint) (\w+):", second_run.output, re.M))
    remote = [r for r in done if not r.startswith(("all", "stage_")) and r not in local]
    assert second_run.slurm_jobs == len(remote) >= 30
    heavy = {"train_segmentation", "predict_masks", "train_classifier", "compute_saliency", "probe_source"}
    assert heavy <= set(remote)
    assert {"paper_figure", "collect_masks", "plan_shards"} <= local
    assert reproducible_digest(second_run.workdir) == reproducible_digest(ci_run)
    # the cluster profile for real sites parses and plans the same jobs
    dry = snakemake(second_run.workdir, "-n", "--profile", "profiles/slurm", *CI_CONFIG)
    assert dry.returncode == 0, dry.stderr[-2000:]
