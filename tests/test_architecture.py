"""The package's shape (architecture.md): imports run one way, wide public functions take
keywords, and every reference to the method document resolves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "patchcxr"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports, at any depth of the file (function-level
    imports included: they hide a cycle, they do not remove it)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("patchcxr"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("patchcxr")}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (the modules in order), or ``None``."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_a_cycle_through_a_function_level_import() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 30  # every module was read
    # a package's __init__ importing its own modules is not a dependency of those modules
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


#: who may import whom: a module of a layer imports only modules of its own or lower layers
LAYERS = [
    {"patchcxr", "patchcxr.io", "patchcxr.logs", "patchcxr.faults", "patchcxr.shards", "patchcxr.peakmem"},
    {"patchcxr.data", "patchcxr.data.labels", "patchcxr.data.decode", "patchcxr.data.readers"},
    {"patchcxr.data.download", "patchcxr.data.harmonise", "patchcxr.data.cohorts", "patchcxr.data.splits"},
    {"patchcxr.synthetic", "patchcxr.synthetic.phantom", "patchcxr.synthetic.sources"},
    {"patchcxr.preprocess", "patchcxr.masks"},
    {"patchcxr.figures"},
    {
        "patchcxr.models",
        "patchcxr.models.state",
        "patchcxr.models.segmentation",
        "patchcxr.models.classifier",
        "patchcxr.models.weights",
    },
    {"patchcxr.tracking", "patchcxr.training"},
    {"patchcxr.segmentation", "patchcxr.segmentation.data", "patchcxr.segmentation.metrics"},
    {"patchcxr.segmentation.predict", "patchcxr.segmentation.evaluate", "patchcxr.segmentation.train"},
    {"patchcxr.classification", "patchcxr.classification.patches", "patchcxr.classification.settings"},
    {"patchcxr.classification.data", "patchcxr.classification.shared_trunk"},
    {"patchcxr.classification.predict", "patchcxr.saliency"},
    {"patchcxr.classification.train", "patchcxr.classification.explain"},
    {"patchcxr.biomarkers", "patchcxr.evaluation"},
    {"patchcxr.audit"},
    {"patchcxr.paper"},
    {"patchcxr.cli"},
]


def test_imports_run_from_higher_layers_to_lower_ones() -> None:
    graph = import_graph()
    layer = {m: i for i, names in enumerate(LAYERS) for m in names}
    assert set(graph) == set(layer), f"modules without a layer: {set(graph) ^ set(layer)}"
    upward = sorted(
        f"{m} ({layer[m]}) imports {d} ({layer[d]})" for m in graph for d in graph[m] if layer[d] > layer[m]
    )
    assert not upward, "\n".join(upward)


def test_saliency_primitives_know_nothing_of_classifier_settings() -> None:
    assert not {d for d in import_graph()["patchcxr.saliency"] if d.startswith("patchcxr.classification")}


def public_functions() -> list[tuple[str, ast.FunctionDef]]:
    out = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        scopes: list[tuple[str, ast.AST]] = [("", tree)]
        scopes += [(f"{n.name}.", n) for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")]
        for prefix, scope in scopes:
            for node in getattr(scope, "body", []):
                if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                    out.append((f"{module_name(path)}.{prefix}{node.name}", node))
    return out


def test_public_functions_with_more_than_four_parameters_take_them_by_keyword() -> None:
    wide = []
    for name, fn in public_functions():
        positional = [a.arg for a in fn.args.posonlyargs + fn.args.args if a.arg not in ("self", "cls")]
        if len(positional) > 4:
            wide.append(f"{name}: {len(positional)} positional parameters")
    assert len(public_functions()) > 100
    assert not wide, "\n".join(wide)


def test_every_reference_to_the_method_document_resolves() -> None:
    # every section sign in the code, the workflow and the configuration cites docs/method.md
    # (the only numbered document); each cited section must be a heading there
    doc = (ROOT / "docs" / "method.md").read_text()
    sections = set(re.findall(r"^#+ (\d+(?:\.\d+)*)\.? ", doc, re.M))
    assert {"2.1", "3.2", "5.5", "6.2", "7.1"} <= sections
    refs: dict[str, set[str]] = {}
    paths = [*SRC.rglob("*.py"), *(ROOT / "workflow").rglob("*"), *(ROOT / "config").glob("*")]
    for path in (p for p in paths if p.is_file()):
        for m in re.finditer(r"§\s?(\d+(?:\.\d+)*)((?:\s?[–-]\s?\d+(?:\.\d+)*)?)", path.read_text()):
            for num in [m.group(1), *re.findall(r"\d+(?:\.\d+)*", m.group(2))]:
                refs.setdefault(num, set()).add(str(path.relative_to(ROOT)))
    assert len(refs) > 10
    missing = {n: sorted(files) for n, files in refs.items() if n not in sections}
    assert not missing, f"sections cited but not in docs/method.md: {missing}"


def test_docs_name_no_file_outside_the_repository() -> None:
    for path in [*SRC.rglob("*.py"), ROOT / "README.md", *(ROOT / "config").glob("*"), *(ROOT / "docs").glob("*")]:
        text = path.read_text()
        assert "shared/docs" not in text, path
        assert not re.search(r"\b(data-sources|tooling|conventions|peers)\.md", text), path


def test_every_rule_with_a_log_records_its_time_and_memory_in_benchmarks() -> None:
    # per-rule wall time and peak memory (Snakemake's benchmark files: s, max_rss, …) of
    # every job, next to its log: docs/results.md quotes them
    missing = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "log:":
                log_path = lines[i + 1].strip().rstrip(",")
                want = log_path.replace("logs/", "benchmarks/", 1).replace(".log", ".tsv")
                if lines[i + 2].strip() != "benchmark:" or lines[i + 3].strip().rstrip(",") != want:
                    missing.append(f"{smk.name}:{i + 1} {log_path}")
    assert not missing, missing
