"""The shape of the code base, checked: the package root holds only entry points, no function in the
operator is longer than a screen, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
OPERATOR = REPO / "operator" / "ludus"
# `python -m ludus`, the `ludus` command, and the settings every layer may read.
ENTRY_POINTS = {"__init__.py", "__main__.py", "cli.py", "settings.py"}
MAX_FUNCTION_LINES = 60


def test_the_package_root_holds_only_the_entry_points() -> None:
    modules = {p.name for p in OPERATOR.glob("*.py")}
    assert modules == ENTRY_POINTS, f"move {sorted(modules - ENTRY_POINTS)} into the folder of its concern"


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_the_operator_is_longer_than_sixty_lines() -> None:
    # Functions only: a pydantic model (a class of fields with their descriptions and bounds) may be long.
    assert [f for p in sorted(OPERATOR.rglob("*.py")) for f in _long_functions(p)] == []


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), as module names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        # A package's __init__ re-exporting its own children is not a circle of concerns.
        own = {m for m in modules if m.startswith(f"{module}.")}
        for imported in (graph.find_modules_directly_imported_by(module) & modules) - own:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_anywhere_in_the_repository() -> None:
    graph = grimp.build_graph("ludus", "ludus_trainer", "devcluster")
    assert _cycles(graph, set(graph.modules)) == []
