"""The data path goes one way (shared/DESIGN.md): manifest -> loader -> cache -> analyzer -> result -> report.

Checked on the source with ``ast`` (nothing is imported): no import cycle among interp's modules, nothing outside
``interp/analyzers/`` reaches into it (the registry, ``api.py`` and ``cli.py`` aside), analyzers do not import each
other, and no function grows past 60 lines without a comment that says why it cannot be split (``# long: ...``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "interp"
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(path: Path, modules: set[str]) -> set[str]:
    """interp modules imported anywhere in ``path`` (top level or inside functions; TYPE_CHECKING blocks aside,
    since they never run)."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me and n.startswith("interp"):
                out.add(n)
    # a package's own __init__ is imported with any of its modules; not an edge of interest
    return {m for m in out if not (me.startswith(m + ".") and sources()[m].name == "__init__.py")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = sources()
    return {m: imports(p, set(mods)) for m, p in mods.items()}


def test_no_import_cycles(graph):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_only_the_entry_points_import_analyzers(graph):
    allowed = {"interp.api", "interp.cli", "interp.analyzers.registry"}
    bad = {m: sorted(n for n in deps if n.startswith("interp.analyzers"))
           for m, deps in graph.items() if not m.startswith("interp.analyzers") and m not in allowed}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_analyzers_do_not_import_each_other(graph):
    shared = {"interp.analyzers", "interp.analyzers.base", "interp.analyzers.registry"}
    bad = {}
    for m, deps in graph.items():
        if m.startswith("interp.analyzers.") and m not in shared:
            others = {n for n in deps if n.startswith("interp.analyzers.") and n not in shared
                      and n.rpartition("_")[0] != m and m.rpartition("_")[0] != n}
            if others:
                bad[m] = sorted(others)
    assert not bad, f"analyzer modules import other analyzers: {bad}"


def test_long_functions_say_why():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                body = "\n".join(lines[node.lineno - 1: node.end_lineno])
                if n > MAX_FUNCTION_LINES and "# long:" not in body:
                    long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
