"""The package's shape (architecture.md): imports run one way, wide public functions take
keywords, and every reference to the method document resolves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import SRC, import_graph, module_name

ROOT = Path(__file__).resolve().parents[1]


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


DOC = ROOT / "docs" / "architecture.md"


def doc_layers(text: str) -> list[tuple[int, list[str]]]:
    """The layer table of docs/architecture.md (section "The package, in layers"): each
    row's number and its module patterns (``patchcxr.``-less names in backticks; ``x.*``
    matches the modules of package ``x``)."""
    section = text.split("## The package, in layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if m := re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line):
            rows.append((int(m.group(1)), re.findall(r"`([\w.*]+)`", m.group(2))))
    return rows


def layer_of(module: str, layers: list[tuple[int, list[str]]]) -> list[int]:
    """The layers whose patterns match ``module`` (``patchcxr`` itself is the package root,
    layer 0)."""
    name = module.removeprefix("patchcxr.") if module != "patchcxr" else ""
    if not name:
        return [layers[0][0]]
    hits = []
    for number, patterns in layers:
        for pattern in patterns:
            if name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
                hits.append(number)
    return hits


def test_doc_layers_parses_the_table_and_matches_packages() -> None:
    text = (
        "## The package, in layers\n\n| layer | modules |\n|---|---|\n| 0 | `io`, `stats` |\n| 1 | `data`, `data.*` |\n"
    )
    layers = doc_layers(text + "\n## Next\n| 2 | `x` |")
    assert layers == [(0, ["io", "stats"]), (1, ["data", "data.*"])]
    assert layer_of("patchcxr.data.readers", layers) == [1] and layer_of("patchcxr.data", layers) == [1]
    assert layer_of("patchcxr.dataset", layers) == [] and layer_of("patchcxr", layers) == [0]


def test_imports_run_from_higher_layers_to_lower_ones() -> None:
    # the map is the test: docs/architecture.md's layer table, read here
    layers = doc_layers(DOC.read_text())
    assert [n for n, _ in layers] == list(range(len(layers))) and len(layers) >= 8
    graph = import_graph()
    matched = {m: layer_of(m, layers) for m in graph}
    unplaced = sorted(m for m, hits in matched.items() if len(hits) != 1)
    assert not unplaced, f"modules in no layer, or in two, of docs/architecture.md: {unplaced}"
    layer = {m: hits[0] for m, hits in matched.items()}
    upward = sorted(
        f"{m} ({layer[m]}) imports {d} ({layer[d]})" for m in graph for d in graph[m] if layer[d] > layer[m]
    )
    assert not upward, "\n".join(upward)


def test_the_doc_lists_the_workflow_stages_of_stages_yaml_in_order() -> None:
    import yaml

    stages = list(yaml.safe_load((ROOT / "workflow" / "stages.yaml").read_text()))
    section = DOC.read_text().split("## The stages", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\|\s*`(\w+)`\s*\|", section, re.M)
    assert listed == stages


def test_no_test_module_imports_another() -> None:
    # shared test code lives in tests/helpers.py (and the fixtures in conftest.py)
    crossing = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            crossing += [f"{path.name} imports {n}" for n in names if n.startswith("tests.test_")]
    assert not crossing, crossing


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
