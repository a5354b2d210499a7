"""The report's pages: ``index.html`` (one card per analyzer, and how the results were made) and one page per
analyzer (method, headline, interactive figures with captions, numbers, provenance and links to its files).
Pure text assembly from summaries, the run record and already-rendered figures: nothing here computes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.report import headline as H
from interp.report.figures import Figure
from interp.report.html import esc, fmt, kv_table, markdown, prose, seconds, size, table

PLOTLY_JS = "plotly.min.js"


@dataclass
class Drawn:
    """A figure as the page shows it: the plotly JSON and the PNG's relative path when drawn, else the reason."""

    spec: Figure
    plot: dict[str, Any] | None = None
    png: str | None = None
    reason: str = ""


def headline_table(rows: list[dict] | dict, limit: int | None = None) -> str:
    if isinstance(rows, dict):   # a summary from before headline rows: label -> value
        rows = [{"run": "", "label": k, "text": fmt(v)} for k, v in rows.items()]
    if not rows:
        return "<p class=skipped>No headline numbers.</p>"
    shown = rows[:limit] if limit else rows
    body = table(["run", "quantity", "value"], [[esc(r.get("run", "")), esc(r["label"]), _value_html(r)]
                                                for r in shown], cls="headline", raw={0, 1, 2})
    more = len(rows) - len(shown)
    return body + (f"<p class=meta>and {more} more on the analyzer's page</p>" if more > 0 else "")


def _value_html(row: dict) -> str:
    value, note = H.format_parts(row)
    cls = "text" if "text" in row else "val"
    return f"<span class={cls}>{esc(value)}</span>" + (f"<br><span class=hnote>{esc(note)}</span>" if note else "")


def figure_section(d: Drawn) -> str:
    f = d.spec
    parts = [f"<section class=fig id='fig-{esc(f.name)}'><h3>{esc(f.title)}</h3>"]
    if d.plot is not None:
        height = int(d.plot["layout"].get("height", 360))
        parts.append(f"<div class=plot id='plot-{esc(f.name)}' style='height:{height}px'></div>")
    else:
        parts.append(f"<p class=skipped>Not drawn: {esc(d.reason)}.</p>")
    parts += [f"<p class=note>{esc(n)}</p>" for n in f.notes + _left_out(f)]
    if f.caption:
        parts.append(f"<figcaption><p>{prose(f.caption)}</p></figcaption>")
    if d.png:
        parts.append(f"<div class=links>Static image for papers: <a href='{esc(d.png)}'>{esc(Path(d.png).name)}</a>"
                     f"</div>")
    return "".join(parts) + "</section>"


def _left_out(f: Figure) -> list[str]:
    return f.left_out() if hasattr(f, "left_out") else []


def analyzer_body(name: str, summary: dict, drawn: list[Drawn], record: dict | None, units: str) -> str:
    parts = [f"<h1>{esc(name)}</h1>"]
    if summary.get("question"):
        parts.append(f"<p class=lead>{prose(summary['question'])}</p>")
    if summary.get("method"):
        parts.append(f"<section class=box><h3>Method and caveats</h3><div class=method>{markdown(summary['method'])}"
                     f"</div></section>")
    if not summary.get("units"):
        parts.append("<p class=skipped>No units: this analyzer selected no checkpoint of this series (see its "
                     "method above for what it needs).</p>")
    parts += ["<h2>Headline</h2>", headline_table(summary.get("headline") or [])]
    parts += [f"<p class=note>{esc(n)}</p>" for n in summary.get("report_notes") or []]
    if drawn:
        parts.append("<h2>Figures</h2>")
        parts += [figure_section(d) for d in drawn]
    tables = numbers_tables(summary) + "".join(extra_table(t) for t in summary.get("tables") or [])
    if tables:
        parts += ["<h2>Numbers</h2>", tables]
    parts += ["<h2>Provenance</h2>", analyzer_provenance(name, summary, record), units]
    return "".join(parts)


def numbers_tables(summary: dict) -> str:
    """The per-run tables of ``summarize_scalars`` (mean ± std over seeds per step), folded away."""
    per_run = summary.get("per_run") or {}
    out = []
    for run, steps in sorted(per_run.items()):
        rows = [(int(st), row) for st, row in steps.items() if isinstance(row, dict)
                and row and all(isinstance(v, dict) and "mean" in v for v in row.values())]
        if not rows:
            continue
        keys = list(dict.fromkeys(k for _, row in rows for k in row))
        body = [[st] + [_mean_std(row.get(k)) for k in keys] for st, row in sorted(rows)]
        out.append(f"<details><summary>{esc(run)}: every quantity per step (mean ± std over seeds)</summary>"
                   + table(["step"] + keys, body, numeric=set(range(len(keys) + 1))) + "</details>")
    return "".join(out)


def _mean_std(cell: dict | None) -> str:
    if not cell:
        return "—"
    n = len(cell.get("per_seed", {}))
    return f"{cell['mean']:.4g} ± {cell['std']:.2g}" + (f" ({n})" if n else "")


def extra_table(t: dict) -> str:
    body = table(t["columns"], [[fmt(c) for c in row] for row in t["rows"]])
    return f"<details><summary>{esc(t['title'])}</summary>{body}</details>"


def analyzer_provenance(name: str, summary: dict, record: dict | None) -> str:
    parts = ["<section class=box>"]
    config = ((record or {}).get("analyzers") or {}).get(name)
    if config is not None:
        parts.append("<h3>Options</h3>" + kv_table(list(config.items())))
    t = ((record or {}).get("timings") or {}).get(name)
    if t:
        parts.append("<h3>Wall time</h3>" + kv_table([
            ("units computed in this run", t.get("units_run")),
            ("units reused from an earlier run", t.get("units_reused")),
            ("in its units", seconds(t.get("compute_s"))),
            ("its share of activation caching", seconds(t.get("cache_s"))),
            ("summarizing", seconds(t.get("summarize_s")))]))
    if record is None:
        parts.append("<p class=note>No run record (run.json) in this folder: options and times unknown.</p>")
    elif config is None:
        parts.append("<p class=note>This summary was written by an earlier command than the one run.json records "
                     "(which did not run this analyzer): its options and times are not known here.</p>")
    parts.append(f"<p class=links>Series-level numbers: <a href='{esc(name)}/summary.json'>{esc(name)}/summary.json"
                 f"</a> · how the whole run was made: <a href='index.html#provenance'>provenance</a></p></section>")
    return "".join(parts)


_UNIT = re.compile(r"^(?P<run>[^/]+)/(?:seed(?P<seed>\d+)/)?step(?P<step>\d+)\.json$")


def units_grid(out_dir: Path, name: str) -> str:
    """Links to every unit's JSON and HDF5, one grid per run (rows: seeds, columns: steps)."""
    base = Path(out_dir) / name
    grid: dict[str, dict[str, dict[int, str]]] = {}
    for p in sorted(base.rglob("*.json")):
        rel = p.relative_to(base).as_posix()
        m = _UNIT.match(rel)
        if not m:
            continue
        row = f"seed {m['seed']}" if m["seed"] is not None else "all seeds"
        stem = f"{name}/{rel[:-5]}"
        links = f"<a href='{esc(stem)}.json'>json</a>"
        if p.with_suffix(".h5").is_file():
            links += f" · <a href='{esc(stem)}.h5'>h5</a>"
        grid.setdefault(m["run"], {}).setdefault(row, {})[int(m["step"])] = links
    if not grid:
        return ""
    parts = ["<details><summary>Unit files: each (checkpoint, analyzer) result as JSON (scalars, provenance) and "
             "HDF5 (arrays with named dimensions)</summary>"]
    for run, rows in sorted(grid.items()):
        steps = sorted({s for r in rows.values() for s in r})
        body = [[row] + [cells.get(s, "") for s in steps] for row, cells in sorted(rows.items())]
        parts.append(f"<h3>{esc(run)}</h3>" + table(["", *[f"step {s}" for s in steps]], body,
                                                     raw=set(range(1, len(steps) + 1))))
    return "".join(parts) + "</details>"


def index_card(name: str, summary: dict, thumb: str | None, timing: dict | None) -> str:
    img = f"<a href='{esc(name)}.html'><img src='{esc(thumb)}' alt='first figure of {esc(name)}'></a>" if thumb else ""
    units = summary.get("units", 0)
    spent = ""
    if timing and units and timing.get("shared_pass_units") == units:
        spent = " · computed inside another analyzer's forward passes"
    elif timing and timing.get("compute_s") is not None:
        spent = f" · {seconds(timing['compute_s'] + (timing.get('cache_s') or 0))} computing"
    return (f"<article class=card><h2><a href='{esc(name)}.html'>{esc(name)}</a></h2>"
            f"<p class=q>{prose(summary.get('question') or '')}</p>{headline_table(summary.get('headline') or [], 6)}"
            f"{img}<div class=meta>{units} units{spent} · <a href='{esc(name)}.html'>figures, method and files</a>"
            f"</div></article>")


def index_body(summaries: dict[str, dict], thumbs: dict[str, str | None], record: dict | None) -> str:
    timings = (record or {}).get("timings") or {}
    series = (record or {}).get("series") or {}
    lead = "Every analyzer's headline numbers (mean ± sample standard deviation over seeds, n - 1 in the " \
           "denominator) and its first figure; each card opens a page " \
           "with interactive figures, captions, method and caveats."
    if series:
        runs = series.get("runs") or []
        lead = (f"{esc(series.get('name', ''))}: {len(runs)} runs ({esc(', '.join(r['run'] for r in runs))}), "
                f"{len(series.get('checkpoints') or [])} checkpoints. " + esc(lead))
    else:
        lead = esc(lead)
    cards = "".join(index_card(n, s, thumbs.get(n), timings.get(n)) for n, s in summaries.items())
    return (f"<h1>interp results</h1><p class=lead>{lead}</p><div class=cards>{cards}</div>"
            + provenance_section(summaries, record))


def provenance_section(summaries: dict[str, dict], record: dict | None) -> str:
    parts = ["<h2 id=provenance>How these results were made</h2>"]
    if record is None:
        return parts[0] + "<p class=note>No run record (run.json) in this folder: it was written by an older interp." \
                          " Rerun <code>interp analyze</code> with the same options to add one.</p>"
    v = record.get("versions") or {}
    dev = record.get("device") or {}
    timings = (record.get("timings") or {}).values()
    ran, reused = sum(t.get("units_run", 0) for t in timings), sum(t.get("units_reused", 0) for t in timings)
    parts.append("<section class=box>" + kv_table([
        ("command", record.get("command")), ("written", record.get("written")),
        ("interp", v.get("interp")), ("device", _device(dev)),
        ("units", f"{ran} computed by this command, {reused} reused from an earlier run"),
        ("wall time of this command", seconds(record.get("wall_s")))]) + "</section>")
    parts.append(series_box(record.get("series") or {}))
    parts.append(options_box(record))
    parts.append("<section class=box><h3>Package versions</h3>" + kv_table(sorted(v.items())) + "</section>")
    links = " · ".join(f"<a href='{esc(n)}/summary.json'>{esc(n)}/summary.json</a>" for n in summaries)
    parts.append(f"<p class=links>Files: <a href='run.json'>run.json</a> (this record) · {links}</p>")
    return "".join(parts)


def _device(dev: dict) -> str:
    used = dev.get("gpu") or dev.get("used", "?")
    return f"{used} (asked for {dev.get('requested', '?')}; {dev.get('platform', '')}, {dev.get('cpus', '?')} CPUs)"


def series_box(series: dict) -> str:
    runs = series.get("runs") or []
    rows = [[r["run"], fmt(r.get("model") or {}),
             "; ".join(f"{t['name']} ({t.get('kind')}, freq {fmt(t.get('frequency'))})" for t in r.get("tasks") or [])
             or "none", fmt(r.get("seeds")), fmt(r.get("steps")), r.get("processing", "")] for r in runs]
    parts = [f"<section class=box><h3>Series: {esc(series.get('name', ''))}</h3>",
             table(["run", "model", "tasks", "seeds", "steps", "weight processing"], rows)]
    cks = series.get("checkpoints") or []
    if cks:
        total = sum(c.get("size") or 0 for c in cks)
        body = [[c["run"], c["seed"], c["step"], c["path"], (c.get("sha256") or "—")[:12], size(c.get("size"))]
                for c in cks]
        parts.append(f"<details><summary>{len(cks)} checkpoints ({size(total)}): path, sha256 and size as read"
                     f"</summary>" + table(["run", "seed", "step", "path (relative to the manifest)", "sha256",
                                            "size"], body, numeric={1, 2, 5}) + "</details>")
    if series.get("manifest_text"):
        parts.append(f"<details><summary>The manifest</summary><pre>{esc(series['manifest_text'])}</pre></details>")
    return "".join(parts) + "</section>"


def options_box(record: dict) -> str:
    timings = record.get("timings") or {}
    analyzers = record.get("analyzers") or {}
    rows = [[n, fmt(cfg) if cfg else "defaults"] for n, cfg in analyzers.items()]
    trows = [[n, t.get("units_run", 0), t.get("units_reused", 0), seconds(t.get("compute_s")),
              seconds(t.get("cache_s")), seconds(t.get("summarize_s"))] for n, t in timings.items()]
    return ("<section class=box><h3>Run options</h3>" + kv_table(list((record.get("options") or {}).items()))
            + "<h3>Analyzer options</h3>" + table(["analyzer", "options"], rows)
            + "<h3>Wall time per analyzer</h3>"
            + table(["analyzer", "units run", "units reused", "in its units", "share of activation caching",
                     "summarizing"], trows, numeric={1, 2, 3, 4, 5}) + "</section>")
