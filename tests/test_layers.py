"""The package's layers stay visible: no import cycle between genlab's modules, and import-linter's contracts hold
(``[tool.importlinter]`` in pyproject.toml: each layer imports only the layers below it)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the genlab modules it imports, anywhere in its source (module level, inside functions, under
    TYPE_CHECKING). ``from pkg import name`` counts as importing ``pkg.name`` when that is a module."""
    paths = {_module_name(p): p for p in (SRC / "genlab").rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in paths else base)
            for target in targets:
                while target and target not in paths:  # `import genlab.a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target in paths and target != module:
                    graph[module].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module, i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> str:
    """One concrete cycle inside a component, for the failure message."""
    members, start = set(component), component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return " -> ".join([start, *reversed(path[:-1]), start])
            if child not in parent:
                parent[child] = node
                frontier.append(child)
    return ", ".join(component)  # pragma: no cover - a component always holds a cycle


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert _cycle_path(graph, ["a", "b", "c"]) == "a -> b -> c -> a"
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.mark.slow
def test_the_import_graph_sees_function_level_imports():
    graph = import_graph()
    assert "genlab.sampling.text" in graph["genlab.models.lm"]  # imported inside LanguageModel.sample
    assert "genlab.checkpoint" in graph["genlab"]  # inside genlab.load


def test_no_import_cycle_between_genlab_modules():
    graph = import_graph()
    cycles = [_cycle_path(graph, c) for c in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_modules_do_not_import_the_package_root():
    # The root is the users' facade (genlab.load); import-linter cannot see imports of it, since it is no layer.
    graph = import_graph()
    importers = {m for m, targets in graph.items() if "genlab" in targets and m != "genlab.__main__"}
    assert not importers, f"{importers}: use genlab.checkpoint.load_model, not genlab.load"


def test_import_linter_contracts_hold():
    beside = Path(sys.executable).with_name("lint-imports")  # the one of this interpreter's environment first
    exe = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert exe is not None, "import-linter is not installed (pip install -e '.[test]')"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
