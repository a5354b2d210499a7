"""The documentation holds: every relative link in README.md, docs/ and the package's Markdown resolves to a file
of the repository, the README starts with the two set-up commands CI runs and stays a front door, and every
docstring example in the package runs (doctest)."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("interp/**/*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    bad = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue   # a web address or an anchor on the same page
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists() or ROOT not in path.parents:
            bad.append(target)
    assert not bad, f"{page.relative_to(ROOT)}: links that do not resolve inside the repository: {bad}"


def test_the_readme_is_a_front_door_that_starts_with_the_two_set_up_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block and text.index("```bash") < text.index("\n## "), "the set-up commands come first"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2 and "interp analyze" in commands[0] and "pytest" in commands[1]
    assert len(text.splitlines()) <= 200


def _modules_with_examples() -> list[str]:
    out = []
    for path in sorted((ROOT / "interp").rglob("*.py")):
        if ">>> " in path.read_text():
            parts = path.relative_to(ROOT).with_suffix("").parts
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert tried and not failures
