"""DVC over the workflow: `dvc repro` through the stage targets, metrics and
plots, push to a remote, and a fresh clone that pulls the results and — after
`snakemake --touch` — has nothing left to run."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.helpers import tree_digest
from tests.workflow_runs import CI_CONFIG, copy_workflow, snakemake

ENV = {
    **os.environ,
    # the stages call `snakemake`: the one next to this interpreter
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.invalid",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.invalid",
}


def run(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def dvc(cwd: Path, *args: str) -> str:
    return run(cwd, str(Path(sys.executable).with_name("dvc")), *args)


@pytest.mark.slow
def test_dvc_repro_push_and_pull_into_a_fresh_clone(ci_run: Path, tmp_path: Path) -> None:
    repo = copy_workflow(tmp_path / "repo")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    (repo / ".dvc").mkdir()
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    remote = tmp_path / "remote"
    # the project's Snakemake by its path, as params.yaml names the venv's: no PATH needed
    command = Path(sys.executable).parent / "snakemake"
    (repo / "params.yaml").write_text(
        f"snakemake:\n  command: {command}\n  configfiles: " + " ".join(CI_CONFIG[1:]) + "\n  cores: 2\n"
    )
    # the results of the CI run, with their modification times (Snakemake: up to date)
    shutil.copytree(ci_run / "results", repo / "results", ignore=shutil.ignore_patterns("tracking"))
    run(repo, "git", "init", "-q")
    dvc(repo, "remote", "modify", "local", "url", str(remote))
    dvc(repo, "repro")
    status = dvc(repo, "status")
    assert "up to date" in status
    metrics = dvc(repo, "metrics", "show", "--json")
    assert json.loads(metrics)  # the headline numbers of results/paper/headline.json
    assert "local_f1" in metrics and "lung_jaccard" in metrics
    table = dvc(repo, "metrics", "show")
    assert "local_f1" in table and max(len(line) for line in table.splitlines()) <= 100, table
    dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "local classifier training" in html and "confusion" in html
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "results")
    assert "pushed" in dvc(repo, "push")

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "results" / "paper").exists()
    dvc(clone, "pull")
    for stage in ("data", "segmentation", "masks", "classification", "evaluation", "paper"):
        assert tree_digest(clone / "results" / stage) == tree_digest(repo / "results" / stage), stage
    # pulled files carry new modification times in no particular order, and the clone has
    # no .snakemake metadata: `snakemake --touch` marks the pulled results up to date
    touched = snakemake(clone, "--touch", "--cores", "1", "paper", *CI_CONFIG)
    assert touched.returncode == 0, touched.stderr[-3000:]
    fresh = snakemake(clone, "-n", "--cores", "1", "paper", *CI_CONFIG)
    assert "Nothing to be done" in fresh.stdout + fresh.stderr, fresh.stdout[-3000:]
    assert "up to date" in dvc(clone, "status")


# --------------------------------------------------------------------------- completeness
def smk_rules() -> dict[str, tuple[list[str], str]]:
    """Every rule and checkpoint of the workflow: (the paths its `output:` names, its script;
    "" for a target rule, which runs nothing). A rule made by `use rule A as B with:` runs
    A's script unless it names its own."""
    rules: dict[str, tuple[list[str], str]] = {}
    inherits: dict[str, str] = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=\s*(?:rule|checkpoint|use rule)(?: \w+)?(?: as \w+ with)?:)", smk.read_text()):
            head = re.match(r"\s*(?:rule|checkpoint|use rule)(?: (\w+))?(?: as (\w+) with)?:", block)
            if not head:
                continue
            if head.group(2):  # use rule <parent> as <name> with:
                name = head.group(2)
                inherits[name] = str(head.group(1))
            else:
                name = head.group(1) or re.search(r'name:\s*f?"([^"]+)"', block).group(1)  # type: ignore[union-attr]
            output = re.search(
                r"\n\s+output:\n(.*?)\n\s+(?:log|wildcard_constraints|params|threads|benchmark):", block, re.S
            )
            script = re.search(r'script:\s*\n\s*"\.\./scripts/([\w.]+)"', block)
            paths = re.findall(r'"((?:results|resources)/[^"]*)"', output.group(1)) if output else []
            rules[name] = (paths, script.group(1) if script else "")
    for name, parent in inherits.items():
        if not rules[name][1]:
            rules[name] = (rules[name][0], rules[parent][1])
    return rules


def package_imports(script: Path) -> set[Path]:
    """The package files a workflow script needs: its imports and theirs, transitively."""
    from tests.helpers import SRC, import_graph

    graph = import_graph()
    todo = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("patchcxr"):
            todo |= {m for m in (node.module, *(f"{node.module}.{a.name}" for a in node.names)) if m in graph}
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            parents = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
            todo |= graph[mod] | parents  # importing a module runs its packages' __init__
    files = set()
    for mod in seen:
        rel = Path(*mod.split("."))
        files.add(
            (SRC.parent / rel).with_suffix(".py")
            if (SRC.parent / rel).with_suffix(".py").is_file()
            else SRC.parent / rel / "__init__.py"
        )
    return {f.relative_to(ROOT) for f in files}


def test_dvc_stages_are_the_workflow_stages_with_their_folders() -> None:
    stages = yaml.safe_load((ROOT / "workflow" / "stages.yaml").read_text())
    dvc_stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(dvc_stages) == list(stages)
    for name, spec in stages.items():
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in dvc_stages[name]["outs"]]
        assert outs == spec["folders"], name
        assert f"stage_{name}" in dvc_stages[name]["cmd"], name


def test_every_dvc_stage_depends_on_the_code_its_rules_run() -> None:
    # a rule belongs to the stage whose folder holds its outputs (downloads, under
    # resources/, are made by the data stage); the stage's deps must cover the rule's
    # script and every package module that script imports, directly or not
    stages = yaml.safe_load((ROOT / "workflow" / "stages.yaml").read_text())
    dvc_stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    folder_stage = {folder: name for name, spec in stages.items() for folder in spec["folders"]}
    folder_stage["resources"] = "data"
    rules = smk_rules()
    assert len(rules) > 30 and all(script for paths, script in rules.values() if paths)
    missing = []
    for rule, (paths, script) in sorted(rules.items()):
        owners = {folder_stage[f] for p in paths for f in folder_stage if p == f or p.startswith(f + "/")}
        if not owners:  # target rules (stage_*, all, paper) make nothing
            continue
        needs = {Path("workflow/scripts") / script, *package_imports(ROOT / "workflow" / "scripts" / script)}
        for stage in owners:
            deps = [Path(d) for d in dvc_stages[stage]["deps"]]
            for need in sorted(needs):
                if not any(need == d or d in need.parents for d in deps):
                    missing.append(f"{stage}: rule {rule} needs {need}")
    assert not missing, "\n".join(sorted(set(missing)))


def test_the_demo_prints_each_stages_jobs_and_job_seconds_from_the_benchmarks(tmp_path: Path) -> None:
    for folder, name, seconds in (("segmentation", "a", 12.5), ("segmentation", "b", 7.5), ("saliency", "local", 3.0)):
        (tmp_path / "benchmarks" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "benchmarks" / folder / f"{name}.tsv").write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:12\t100\n")
    out = subprocess.run(
        [sys.executable, str(ROOT / "workflow" / "stage_table.py"), str(tmp_path)], capture_output=True, text=True
    ).stdout
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["segmentation"][1:3] == ["2", "20"]  # two jobs, 20 s
    assert lines["evaluation"][1:3] == ["1", "3"]  # results/saliency's jobs count to the evaluation stage
    assert lines["audit"][1:3] == ["0", "0"] and lines["all"][1] == "23"
