"""The scripts outside the package (benchmarks/, analyses/) are not imported by any other test: each must at least
compile and import, so an edit that breaks one is caught here rather than by the next person who runs it
(benchmarks/grads.py once shipped an IndentationError for weeks)."""

import importlib.util
import py_compile
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for d in ("benchmarks", "analyses") for p in (ROOT / d).glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_compiles_and_imports(path):
    py_compile.compile(str(path), doraise=True)
    spec = importlib.util.spec_from_file_location(f"_script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)   # module level only: the scripts do their work under __main__
    finally:
        del sys.modules[spec.name]
    if "__main__" in path.read_text():
        assert callable(getattr(module, "main", None)), f"{path} runs as a script but has no main()"
