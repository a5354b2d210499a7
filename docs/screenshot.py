"""Regenerate docs/report-index.png, the README's picture of the report: the top of index.html of a results folder,
taken with the system's chromium (as in tests/test_report_browser.py) and quantised to stay under 300 KB.

    python docs/screenshot.py interp-results/
"""

import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(results: Path, out: Path, height: int = 1250) -> None:
    shot = out.with_suffix(".full.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
        page.goto((results / "index.html").resolve().as_uri(), wait_until="load")
        page.screenshot(path=str(shot))
        browser.close()
    Image.open(shot).convert("RGB").quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    shot.unlink()
    print(f"{out}: {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("report-index.png"))
