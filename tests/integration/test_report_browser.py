"""The report in a real browser: Debian's chromium, driven by playwright's Python package (its own browser
downloads are never used), every page of the bundled report opened over file:// with the network blocked.

Each page must render with no console error; every plot container must hold plotly's SVG; every image must have
loaded (naturalWidth > 0); no visible text may show an absolute path or a raw Python list. A full-page screenshot of
each page is saved under the test's output folder (``$INTERP_SCREENSHOTS`` if set, else the test's tmp_path).

Skipped, with the reason, only where chromium or playwright is genuinely missing; under CI (``CI`` set) a missing
browser is a failure, since ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # seconds to minutes each: left out of the edit-test loop

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ABSOLUTE_PATH = re.compile(r"(?:^|[\s(\[=:'\"])(?:/[\w.+-]+){2,}/?|[A-Za-z]:\\\w|file://")
PYTHON_LIST = re.compile(r"\[\s*(?:-?\d+(?:\.\d+)?(?:e-?\d+)?|None|True|False|'[^']*'|\"[^\"]*\")\s*,")
PYTHON_REPR = re.compile(r"\{'\w+':|\(\s*-?\d+\.\d+\s*,\s*-?\d+\.\d+\s*\)|<interp\.|object at 0x")


def _chromium() -> str | None:
    for path in (os.environ.get("INTERP_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if path and Path(path).is_file():
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    reasons = []
    executable = _chromium()
    if executable is None:
        reasons.append("no chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reasons.append("no playwright Python package (pip install -e '.[test]')")
    if reasons:
        if os.environ.get("CI"):
            pytest.fail("the browser test must run in CI: " + "; ".join(reasons))
        pytest.skip("; ".join(reasons))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(context, page_path: Path):
    """Load one page; returns (page, console errors)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(page_path.as_uri(), wait_until="load")
    try:
        page.wait_for_function("() => [...document.querySelectorAll('div.plot')]"
                               ".every(d => d.querySelector('svg.main-svg'))", timeout=20_000)
    except Exception:   # playwright's TimeoutError: the assertion below names the plots that never drew
        pass
    return page, errors


def check_page(context, page_path: Path, shots: Path) -> dict:
    page, errors = _open(context, page_path)
    try:
        state = page.evaluate("""() => ({
            plots: document.querySelectorAll('div.plot').length,
            drawn: document.querySelectorAll('div.plot svg.main-svg').length,
            plotIds: [...document.querySelectorAll('div.plot')].filter(d => !d.querySelector('svg.main-svg'))
                     .map(d => d.id),
            images: [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
            text: (() => {   // with every <details> open, so folded tables and the manifest are read too
                const closed = [...document.querySelectorAll('details:not([open])')];
                closed.forEach(d => d.open = true);
                const text = document.title + '\\n' + document.body.innerText;
                closed.forEach(d => d.open = false);
                return text;
            })(),
        })""")
        page.screenshot(path=str(shots / f"{page_path.stem}.png"), full_page=True)
    finally:
        page.close()
    assert not errors, (page_path.name, errors)
    assert not state["plotIds"], (page_path.name, "plots without an SVG", state["plotIds"])
    broken = [i["src"] for i in state["images"] if not i["ok"]]
    assert not broken, (page_path.name, "images that did not load", broken)
    for pattern in (ABSOLUTE_PATH, PYTHON_LIST, PYTHON_REPR):
        m = pattern.search(state["text"])
        assert m is None, (page_path.name, pattern.pattern, state["text"][max(0, m.start() - 80):m.end() + 80])
    return state


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("INTERP_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_every_page_of_the_bundled_report_renders_offline(browser, bundled_results, shots):
    out = bundled_results.out_dir
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    context.route("**/*", only_files)
    pages = sorted(out.glob("*.html"))
    assert len(pages) == len(bundled_results.summaries) + 1
    total_plots = 0
    try:
        for page_path in pages:
            state = check_page(context, page_path, shots)
            total_plots += state["drawn"]
            if page_path.name == "index.html":
                assert len(state["images"]) >= len(bundled_results.summaries) - 1   # a thumbnail per card
    finally:
        context.close()
    assert not blocked, f"pages asked the network for {blocked}"
    assert total_plots >= 15
    assert sorted(p.name for p in shots.glob("*.png")) == sorted(f"{p.stem}.png" for p in pages)
    print(f"screenshots in {shots}")
