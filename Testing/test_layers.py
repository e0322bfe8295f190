"""The engine's imports go one way: no cycle between its packages, and the lower layers never reach up."""
from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

TORCH_FREE = True

ENGINE = Path(__file__).resolve().parents[1] / "dcaseg"
# What runs models and reads files never imports what trains, evaluates or drives them.
LOWER = {"nets", "data", "inference", "outputs", "package", "package_meta", "package_members", "architecture",
         "grouping", "labelsplit", "metrics", "events", "errors", "atomic"}
UPPER = {"training", "ablation", "commands", "cli", "demo", "scoring", "active_learning", "prepare"}


def _unit(path: Path) -> str:
    """The engine package (``training``) or top-level module (``metrics``) a source file belongs to."""
    parts = path.relative_to(ENGINE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imported_units(path: Path) -> set[str]:
    package = list(path.relative_to(ENGINE).parts[:-1])
    units = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            target = package[:len(package) - (node.level - 1)] + [p for p in (node.module or "").split(".") if p]
            units |= {target[0]} if target else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dcaseg."):
            units.add(node.module.split(".")[1])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            units |= {a.name.split(".")[1] for a in node.names if a.name.startswith("dcaseg.")}
    return units


def engine_imports() -> dict[str, set[str]]:
    """Engine unit → the other engine units it imports."""
    graph: dict[str, set[str]] = {}
    for path in ENGINE.rglob("*.py"):
        unit = _unit(path)
        graph.setdefault(unit, set()).update(u for u in _imported_units(path) if u != unit and u != "__version__")
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"data": {"training"}, "training": {"nets", "data"}, "nets": set()}) == \
        ["data", "training", "data"]
    assert find_cycle({"training": {"data"}, "data": set()}) is None


def test_no_engine_package_imports_one_that_imports_it() -> None:
    assert find_cycle(engine_imports()) is None


def test_the_lower_layers_never_import_the_upper_ones() -> None:
    graph = engine_imports()
    assert LOWER | UPPER <= set(graph), "a layer named here no longer exists"
    assert {unit: graph[unit] & UPPER for unit in LOWER if graph[unit] & UPPER} == {}
