"""The shape of the package, checked on the source with ``ast`` (nothing is imported).

The data path goes one way: checkpoints -> prompts -> activations -> analyzers -> results -> report, driven by the
runner. ``LEVELS`` lists interp's parts from the bottom up; a module may import (at run time or for type checking
alone) only from its own level or below, so no step reaches back upstream and there is no import cycle. Analyzers
do not import each other (a join between two is declared with ``uses`` and handed in by the runner), every analyzer
folder holds its ``method.md`` and a ``summary.py`` with the common ``summarize(results, uses)``, nothing in the
package points at a file outside the repository, and no function grows past 60 lines without a comment that says
why it cannot be split (``# long: ...``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "interp"
MAX_FUNCTION_LINES = 60

# From the bottom up. A module belongs to the longest prefix listed; a module may import from its level or below.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("interp", "interp.errors", "interp.config", "interp.trust"),        # foundations: errors, options, trust
    ("interp.results", "interp.prompts.prompt_set"),                      # the two data contracts
    ("interp.toys",),                                                     # the toy world's definitions
    ("interp.maths",),                                                    # numerics shared by analyzers
    ("interp.checkpoints",),                                              # manifest, formats, loading
    ("interp.prompts",),                                                  # prompt sources
    ("interp.activations",),                                              # the activation cache (I/O only)
    ("interp.runner.context", "interp.report"),                           # what an analyzer sees; figure specs
    ("interp.analyzers",),
    # the trainer writes checkpoints and manifests, so it sits above them though it lives with the toy world
    # the contract check plans and runs units as the runner does
    ("interp.runner", "interp.toys.training", "interp.analyzers.checks"),
    ("interp.api", "interp.cli"),                                         # the public front
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def level(module: str) -> int:
    best, where = -1, None
    for i, prefixes in enumerate(LEVELS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, where = len(p), i
    assert where is not None, f"{module} belongs to no level of LEVELS: add it"
    return where


def imports(path: Path, modules: set[str]) -> set[str]:
    """interp modules imported anywhere in ``path``: top level, inside functions, and under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
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


def test_no_module_imports_from_a_level_above_it(graph):
    upward = sorted(f"{m} (level {level(m)}) imports {n} (level {level(n)})"
                    for m, deps in graph.items() for n in deps if level(n) > level(m))
    assert not upward, upward


def analyzer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["interp", "analyzers"] else None


def test_analyzer_folders_do_not_import_each_other(graph):
    bad = sorted(f"{m} imports {n}" for m, deps in graph.items() for n in deps
                 if analyzer_of(m) and analyzer_of(n) and analyzer_of(m) != analyzer_of(n))
    assert not bad, bad


def test_only_the_runner_and_the_front_import_analyzers(graph):
    allowed = ("interp.runner.plan", "interp.runner.run", "interp.api", "interp.cli")
    bad = sorted(f"{m} imports {n}" for m, deps in graph.items() for n in deps
                 if n.startswith("interp.analyzers") and not m.startswith(("interp.analyzers", *allowed)))
    assert not bad, bad


def analyzer_folders() -> list[Path]:
    return sorted(p for p in (ROOT / "analyzers").iterdir() if p.is_dir() and (p / "analyzer.py").is_file())


@pytest.mark.parametrize("folder", analyzer_folders(), ids=lambda p: p.name)
def test_every_analyzer_folder_has_its_method_and_a_summary_of_the_common_signature(folder):
    method = folder / "method.md"
    assert method.is_file() and len(method.read_text().split()) > 50, f"{method}: missing or a stub"
    summary = ast.parse((folder / "summary.py").read_text())
    fns = {n.name: n for n in summary.body if isinstance(n, ast.FunctionDef)}
    assert "summarize" in fns, f"{folder}/summary.py has no summarize()"
    args = [a.arg for a in fns["summarize"].args.args]
    assert args == ["results", "uses"], f"{folder}/summary.py: summarize{tuple(args)}, expected (results, uses)"
    registry = (ROOT / "analyzers" / "registry.py").read_text()
    assert f"interp.analyzers.{folder.name}.analyzer:" in registry, f"{folder.name} is not registered"


OUTSIDE = re.compile(r"SCIENCE\.md|FIELD-NOTES|DESIGN\.md|\.\./shared|shared/")


def test_nothing_in_the_package_points_outside_the_repository():
    bad = [f"{p.relative_to(ROOT.parent)}:{i}" for p in sorted(ROOT.rglob("*")) if p.suffix in (".py", ".md")
           for i, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not bad, bad


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
