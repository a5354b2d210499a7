"""``write_report(out_dir)``: the report over a results folder, from what is saved there only (each analyzer's
``summary.json`` with its figure specs, and ``run.json``), so ``interp report DIR`` redraws it without a model.

Writes, all through ``interp.trust.atomic``: ``plotly.min.js`` (once, beside the pages: nothing is fetched at view
time), ``index.html``, ``<analyzer>.html`` per analyzer, and ``<analyzer>/<figure>.png`` per drawn figure. Every link is
relative, so the folder can be moved, zipped or served as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interp.errors import ResultError
from interp.report import figures as F
from interp.report.html import page, script_json
from interp.report.pages import PLOTLY_JS, Drawn, analyzer_body, index_body, units_grid
from interp.report.provenance import read_run_record
from interp.report.style import run_colors

SKIP_DIRS = {"cache"}


def load_summaries(out_dir: Path, order: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """{analyzer: summary} for every ``<analyzer>/summary.json`` in the folder, in ``order`` first."""
    from interp.trust.paths import SAFE_NAME

    found = {}
    for p in sorted(Path(out_dir).glob("*/summary.json")):
        if p.parent.name in SKIP_DIRS or not SAFE_NAME.fullmatch(p.parent.name):   # names become page names
            continue
        try:
            summary = json.loads(p.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise ResultError(f"{p}: not a readable summary ({e}); rerun `interp analyze` for this analyzer") from None
        if not isinstance(summary, dict):
            raise ResultError(f"{p}: a summary must be a JSON object")
        found[p.parent.name] = summary
    names = [n for n in (order or []) if n in found] + sorted(n for n in found if n not in (order or []))
    return {n: found[n] for n in names}


def parse_figures(name: str, summary: dict) -> tuple[list[F.Figure], list[str]]:
    """The figure specs of a summary, and notes for entries that are not specs (the file paths that summaries
    written before the report pages held: nothing to redraw from, so the page says how to get them back)."""
    from interp.trust.paths import safe_name

    specs, legacy = [], 0
    for i, d in enumerate(summary.get("figures") or []):
        if not isinstance(d, dict):
            legacy += 1
            continue
        try:
            specs.append(F.from_json(d))
        except (TypeError, ValueError) as e:
            raise ResultError(f"{name}/summary.json: figure {i} is not a figure spec ({e})") from None
        safe_name(specs[-1].name, f"{name}/summary.json: figure {i}'s name (it becomes a file name)")
    notes = [f"{legacy} figure(s) in this summary were written by an older interp as image paths, with no data to "
             f"redraw them from: rerun `interp analyze` with the same options (complete units are reused, so it "
             f"only summarizes again)"] if legacy else []
    return specs, notes


def draw(out_dir: Path, name: str, specs: list[F.Figure], colors: dict[str, str], png: bool = True) -> list[Drawn]:
    """The interactive plot of every spec that carries information (the PNGs: ``render_pngs``)."""
    from interp.report import render_plotly

    out = []
    for spec in specs:
        reason = spec.why_not_drawn()
        if reason:
            out.append(Drawn(spec, reason=reason))
            continue
        out.append(Drawn(spec, render_plotly.render(spec, colors), f"{name}/{spec.name}.png" if png else None))
    return out


def render_pngs(out_dir: Path, drawn: list[Drawn], colors: dict[str, str], workers: int = 1) -> None:
    """The static PNG of every drawn figure, on ``workers`` processes when there are enough figures to repay
    starting them (matplotlib lays text out slowly: about half a second a figure, 30 s for the bundled report)."""
    from interp.report import render_png

    jobs = [(d.spec, Path(out_dir) / d.png, colors) for d in drawn if d.png]
    if workers <= 1 or len(jobs) < 8:
        for job in jobs:
            render_png.render(*job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_render_one, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


def _render_one(job: tuple) -> None:
    from interp.report import render_png

    render_png.render(*job)


def all_runs(summaries: dict[str, dict], record: dict | None) -> list[str]:
    runs = [r["run"] for r in ((record or {}).get("series") or {}).get("runs") or []]
    for s in summaries.values():
        runs += [r for r in (s.get("per_run") or {}) if r not in runs]
    return runs


def plots_script(drawn: list[Drawn]) -> str:
    figs = {f"plot-{d.spec.name}": d.plot for d in drawn if d.plot is not None}
    if not figs:
        return ""
    from interp.report.render_plotly import CONFIG

    return (f"<script src='{PLOTLY_JS}'></script><script type='application/json' id=figures>{script_json(figs)}"
            f"</script><script>const config={script_json(CONFIG)};"
            "const figs=JSON.parse(document.getElementById('figures').textContent);"
            "for(const [id,f] of Object.entries(figs)){Plotly.newPlot(id,f.data,f.layout,config);}</script>")


def write_plotly_js(out_dir: Path) -> Path:
    from importlib.resources import files

    from interp.trust import atomic

    data = (files("plotly") / "package_data" / PLOTLY_JS).read_bytes()
    target = Path(out_dir) / PLOTLY_JS
    if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
        return target   # already there (a redraw of the same folder)
    return atomic.write_bytes(target, data)


def write_report(out_dir: str | Path, png: bool = True, workers: int = 1) -> Path:
    """Write every page of the report over ``out_dir`` (the PNGs on ``workers`` processes); returns the index
    page's path."""
    from interp.trust import atomic

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ResultError(f"{out_dir}: no such results folder")
    record = read_run_record(out_dir)
    summaries = load_summaries(out_dir, list((record or {}).get("analyzers") or {}))
    if not summaries:
        raise ResultError(f"{out_dir}: no <analyzer>/summary.json here; `interp analyze --out {out_dir}` writes them")
    colors = run_colors(all_runs(summaries, record))
    write_plotly_js(out_dir)
    nav = [("index.html", "overview")] + [(f"{n}.html", n) for n in summaries]
    thumbs, pages = {}, {}
    for name, summary in summaries.items():
        specs, notes = parse_figures(name, summary)
        pages[name] = (draw(out_dir, name, specs, colors, png), notes)
    render_pngs(out_dir, [d for drawn, _ in pages.values() for d in drawn], colors, workers)
    for name, summary in summaries.items():
        drawn, notes = pages[name]
        thumbs[name] = next((d.png for d in drawn if d.png), None)
        body = analyzer_body(name, {**summary, "report_notes": notes}, drawn, record, units_grid(out_dir, name))
        atomic.write_text(out_dir / f"{name}.html", page(f"{name} · interp results", body, nav, f"{name}.html",
                                                         plots_script(drawn)))
    title = "interp results" + (f" · {record['series']['name']}" if (record or {}).get("series") else "")
    return atomic.write_text(out_dir / "index.html", page(title, index_body(summaries, thumbs, record), nav,
                                                          "index.html"))
