"""One page over a results folder: every analyzer's headline numbers and figures (``index.html``), so a run's output
can be looked at in a browser instead of read from JSON. Paths are relative: the folder can be moved or shared."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def write_index(out_dir: Path, summaries: dict[str, dict[str, Any]]) -> Path:
    out_dir = Path(out_dir)
    parts = ["<!doctype html><meta charset='utf-8'><title>interp results</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}td{padding:2px 12px}"
             "img{max-width:48%;margin:4px;border:1px solid #ddd}</style>",
             f"<h1>interp results: {html.escape(str(out_dir.resolve()))}</h1>"]
    for name, summary in summaries.items():
        parts.append(f"<h2 id='{html.escape(name)}'>{html.escape(name)} <small>({summary.get('units', 0)} units, "
                     f"<a href='{html.escape(name)}/summary.json'>summary.json</a>)</small></h2>")
        rows = (summary.get("headline") or {}).items()
        if rows:
            parts.append("<table>" + "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                                             for k, v in rows) + "</table>")
        for fig in summary.get("figures") or []:
            src = html.escape(_link(Path(fig), out_dir))
            parts.append(f"<a href='{src}'><img src='{src}' alt='{html.escape(Path(fig).name)}'></a>")
    from interp import atomic

    return atomic.write_text(out_dir / "index.html", "\n".join(parts) + "\n")


def _link(fig: Path, out_dir: Path) -> str:
    try:
        return fig.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:   # a figure written outside the results folder
        return fig.resolve().as_uri()


def _fmt(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)
