"""HTML building blocks for the report pages: the page frame, tables, captions. Everything that reaches the page
from a summary or a manifest is escaped here; JSON placed in a ``<script>`` cannot close it."""

from __future__ import annotations

import html
import json
import re
from typing import Any

CSS = """
:root{--ink:#1d2329;--muted:#5b6570;--line:#dfe3e8;--bg:#f6f7f9;--accent:#0b5cad}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header.top{background:#fff;border-bottom:1px solid var(--line);padding:10px 24px;position:sticky;top:0;z-index:5}
header.top nav{max-width:1240px;margin:0 auto;display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline}
header.top a{color:var(--accent);text-decoration:none;font-size:14px}
header.top a.here{color:var(--ink);font-weight:600}
header.top .brand{font-weight:700;color:var(--ink);margin-right:8px}
main{max-width:1240px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 8px}h3{font-size:16px;margin:0 0 6px}
p.lead{color:var(--muted);margin:0 0 16px;max-width:900px}
a{color:var(--accent)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:18px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 18px;display:flex;
 flex-direction:column;gap:8px}
.card h2{margin:0;font-size:18px}.card h2 a{text-decoration:none}
.card .q{color:var(--muted);margin:0}
.card img{width:100%;height:250px;object-fit:contain;border:1px solid var(--line);border-radius:6px;background:#fff}
.card .meta{font-size:13px;color:var(--muted)}
section.fig,section.box{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 18px;
 margin:16px 0}
.plot{width:100%}
figcaption,.caption{color:var(--muted);font-size:14px;max-width:1000px;margin-top:6px}
.skipped{color:var(--muted);font-style:italic;margin:4px 0}
.note{color:#8a5a00;font-size:13px;margin:2px 0}
.links{font-size:13px;margin-top:6px}
table{border-collapse:collapse;font-size:13.5px;margin:6px 0}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
table.kv th{background:none;font-weight:normal;color:var(--muted);white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.headline{width:100%}
table.headline td:first-child{white-space:nowrap;color:var(--muted)}
table.headline .val{white-space:nowrap;font-variant-numeric:tabular-nums}
table.headline .hnote{color:var(--muted);font-size:12px}
details{margin:8px 0}summary{cursor:pointer;color:var(--accent)}
pre{background:#f3f4f6;padding:10px;border-radius:6px;overflow:auto;max-height:420px;font-size:12.5px}
code{font-size:13px;background:#f3f4f6;padding:1px 4px;border-radius:4px}
.method{max-width:1000px}
.scroll{overflow-x:auto}
"""

_ARXIV = re.compile(r"arXiv[ :]?(\d{4}\.\d{4,5})")


def esc(text: Any) -> str:
    return html.escape(str(text))


def prose(text: str) -> str:
    """Escaped text with arXiv ids linked to their abstract pages and blank lines as paragraph breaks."""
    out = _ARXIV.sub(lambda m: f'<a href="https://arxiv.org/abs/{m.group(1)}">arXiv {m.group(1)}</a>', esc(text))
    return "</p><p>".join(p.strip() for p in out.split("\n\n") if p.strip())


_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
)


def markdown(text: str) -> str:
    """The small Markdown a method text uses, as HTML: paragraphs, ``- `` lists, ``code``, **bold**, *emphasis*
    and arXiv links. Everything is escaped first, so a method file can add markup but never script."""
    blocks = []
    for block in (b for b in esc(text).split("\n\n") if b.strip()):
        lines = block.strip().splitlines()
        if all(l.startswith(("- ", "  ")) for l in lines) and lines[0].startswith("- "):
            items, cur = [], []
            for line in lines:
                if line.startswith("- ") and cur:
                    items.append(" ".join(cur))
                    cur = []
                cur.append(line[2:].strip() if line.startswith("- ") else line.strip())
            items.append(" ".join(cur))
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            blocks.append(f"<p>{_inline(' '.join(l.strip() for l in lines))}</p>")
    return "".join(blocks)


def _inline(text: str) -> str:
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return _ARXIV.sub(lambda m: f'<a href="https://arxiv.org/abs/{m.group(1)}">arXiv {m.group(1)}</a>', text)


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<`` at all (so nothing in the data can end the element or
    open a comment), and ``>`` and ``&`` escaped too; ``JSON.parse`` reads the escapes back."""
    text = json.dumps(_clean(value), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _clean(v: Any) -> Any:
    """NaN and inf become null (JSON has neither; plotly draws a gap)."""
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def page(title: str, body: str, nav: list[tuple[str, str]], here: str, scripts: str = "") -> str:
    links = " ".join(f'<a href="{esc(href)}"{" class=here" if href == here else ""}>{esc(label)}</a>'
                     for href, label in nav)
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>"
            f"<header class=top><nav><span class=brand>interp</span>{links}</nav></header>\n"
            f"<main>{body}</main>{scripts}</body></html>\n")


def table(columns: list[str], rows: list[list[Any]], cls: str = "", numeric: set[int] | None = None,
          raw: set[int] | None = None) -> str:
    """An HTML table; cells are escaped unless their column is in ``raw`` (already HTML)."""
    numeric, raw = numeric or set(), raw or set()
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f"<td{' class=num' if i in numeric else ''}>{c if i in raw else esc(c)}</td>" for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return (f"<div class=scroll><table class='{esc(cls)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f"</table></div>")


def kv_table(pairs: list[tuple[str, Any]]) -> str:
    """Two columns, names and values, no header row."""
    rows = "".join(f"<tr><th scope=row>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in pairs)
    return f"<div class=scroll><table class=kv><tbody>{rows}</tbody></table></div>"


def fmt(v: Any) -> str:
    """A value as a reader writes it: numbers with sensible digits, lists joined by commas, never a repr."""
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "—"}[v]
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return "; ".join(f"{k} {fmt(x)}" for k, x in v.items()) if v else "none"
    return str(v)


def size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"
