"""Figure spec -> plotly figure (a JSON-able ``{"data", "layout"}`` dict that plotly.js draws in the page).

Built as plain dicts, not through plotly's Python objects: the page needs only the JSON, and the report should not
pay plotly's validation for every point. Panels are laid out on a grid of axes (``grid``); titles stay in the page's
HTML, where long ones wrap instead of being cut off.
"""

from __future__ import annotations

from typing import Any

from interp.report import figures as F
from interp.report.style import (
    CYCLIC,
    FAINT,
    SERIES,
    color_map,
    esc,
    log_positions,
    log_ticks,
    natural_key,
    nice_grid,
    tick_text,
)

ROW_HEIGHT = 340
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"],
          "toImageButtonOptions": {"format": "svg"}}


def render(fig: F.Figure, run_colors: dict[str, str] | None = None) -> dict[str, Any]:
    """The plotly JSON of a drawn figure (call only when ``fig.why_not_drawn()`` is empty)."""
    draw = {"lines": _lines, "heatmap": _heatmap, "histogram": _histogram, "scatter": _scatter, "bars": _bars}
    return draw[fig.kind](fig, run_colors or {})


def grid(titles: list[str], max_cols: int = 3, hgap: float = 0.07) -> tuple[list[tuple[str, str]], dict]:
    """Axes for ``len(titles)`` panels: ([(x ref, y ref)], layout entries with domains and panel-title
    annotations)."""
    n_rows, n_cols = nice_grid(len(titles), max_cols)
    vgap = 0.16 if n_rows > 1 else 0.0
    width, height = (1 - hgap * (n_cols - 1)) / n_cols, (1 - vgap * (n_rows - 1)) / n_rows
    refs, layout, notes = [], {}, []
    for i, title in enumerate(titles):
        r, c = divmod(i, n_cols)
        x0, y1 = c * (width + hgap), 1 - r * (height + vgap)
        k = "" if i == 0 else str(i + 1)
        layout[f"xaxis{k}"] = {"domain": [x0, x0 + width], "anchor": f"y{k}", **_axis()}
        layout[f"yaxis{k}"] = {"domain": [y1 - height, y1], "anchor": f"x{k}", **_axis()}
        refs.append((f"x{k}", f"y{k}"))
        if title and len(titles) > 1:
            notes.append({"text": f"<b>{esc(title)}</b>", "x": x0 + width / 2, "y": y1, "xref": "paper",
                          "yref": "paper", "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                          "font": {"size": 13}})
    layout["annotations"] = notes
    layout["height"] = ROW_HEIGHT * n_rows + (40 if len(titles) > 1 else 0)
    return refs, layout


def _axis() -> dict:
    # exponents as 5e-5, not SI prefixes (50µ): these are losses and cosines, not lengths
    return {"showline": True, "linecolor": "#888", "ticks": "outside", "gridcolor": "#ececec", "zeroline": False,
            "automargin": True, "exponentformat": "e"}


def _base(layout: dict, legend_title: str = "") -> dict:
    base = {"font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
            "margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "plot_bgcolor": "white", "paper_bgcolor": "white",
            "hovermode": "closest", "legend": {"title": {"text": esc(legend_title)}, "itemclick": "toggle",
                                               "groupclick": "togglegroup"}}
    return {**base, **layout}


def _title(layout: dict, refs: list[tuple[str, str]], x_title: str, y_title: str) -> None:
    """Axis titles, wrapped to the panel's width: side-by-side panels must not run their titles into each other."""
    _, cols = nice_grid(len(refs))
    for xr, yr in refs:
        layout["xaxis" + xr[1:]]["title"] = {"text": _wrap(x_title, 100 // cols)}
        layout["yaxis" + yr[1:]]["title"] = {"text": _wrap(y_title, 48 if len(refs) <= 3 else 36)}


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "<br>".join(esc(line) for line in textwrap.wrap(text, max(16, width))) if text else ""


def _lines(fig: F.Lines, run_colors: dict[str, str]) -> dict:
    panels = fig.panels()
    refs, layout = grid(panels)
    xs = [x for l in fig.lines for x in l.x]
    where = log_positions(xs) if fig.log_x else {x: x for x in xs if x is not None}
    colors = color_map([l.group for l in fig.lines if not l.faint], run_colors)
    shown: set[str] = set()
    data = []
    for l in sorted(fig.lines, key=lambda l: (not l.faint, l.seed is None)):
        ref = refs[panels.index(l.panel)]
        if l.lo is not None:
            data += _band(l, ref, where, FAINT if l.faint else colors[l.group])
        data.append(_line_trace(fig, l, ref, where, colors, shown))
    vals, texts = log_ticks(xs, where) if fig.log_x else ([], [])
    for xr, _ in refs:
        ax = layout["xaxis" + xr[1:]]
        ax["type"] = "log" if fig.log_x else "linear"
        if vals:
            ax.update(tickmode="array", tickvals=vals, ticktext=texts)
    if fig.log_y:
        for _, yr in refs:
            layout["yaxis" + yr[1:]]["type"] = "log"
    _title(layout, refs, fig.x_label + (" (log scale)" if fig.log_x else ""), fig.y_label)
    for (_, yr), panel in zip(refs, panels):
        if panel in fig.y_labels:
            layout["yaxis" + yr[1:]]["title"] = {"text": esc(fig.y_labels[panel])}
    layout["shapes"] = [_mark(m, refs[panels.index(m.panel)] if m.panel in panels else refs[0], where, colors)
                        for m in fig.marks]
    if fig.zero_line:
        layout["shapes"] += [{"type": "line", "xref": f"{xr} domain", "yref": yr, "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                              "line": {"color": "#999", "width": 1}} for xr, yr in refs]
    return {"data": data, "layout": _base(layout, fig.group_title)}


def _line_trace(fig: F.Lines, l: F.Line, ref: tuple[str, str], where: dict, colors: dict, shown: set) -> dict:
    mean = l.seed is None
    key = "faint" if l.faint else l.group
    legend = key not in shown and (mean or l.faint or not _has_mean(fig, l.group))
    if legend:
        shown.add(key)
    who = f"seed {l.seed}" if not mean else (f"mean of {l.n_seeds} seeds" if l.n_seeds > 1 else "")
    hover = "<br>".join(p for p in (f"<b>{esc(fig.group_title)}: {esc(l.group)}</b>", esc(who), esc(l.label),
                                    f"{esc(fig.x_label)}: %{{customdata}}", f"{esc(fig.y_label)}: %{{y:.4g}}") if p)
    color = FAINT if l.faint else colors[l.group]
    width = 0.8 if l.faint else (2.8 if mean and l.n_seeds > 1 else (1.0 if not mean else 2.0))
    rank = 1000 + sorted(colors, key=natural_key).index(l.group) if l.group in colors else 999
    mode = "markers" if l.points else ("lines+markers" if len(l.x) <= 16 else "lines")
    return {"type": "scatter", "mode": mode, "legendrank": rank,
            "x": [where.get(x) for x in l.x], "y": l.y,
            "customdata": [tick_text(x) if x is not None else "" for x in l.x], "xaxis": ref[0], "yaxis": ref[1],
            "name": esc(l.group if not l.faint else l.group), "legendgroup": key, "showlegend": legend,
            "line": {"color": color, "width": width}, "opacity": 0.45 if not mean and not l.faint else 1.0,
            "marker": {"size": 8 if l.points else (6 if mean and not l.faint else 3), "color": color,
                       "symbol": "x" if l.points else "circle"},
            "hovertemplate": hover + "<extra></extra>", "connectgaps": False}


def _band(l: F.Line, ref: tuple[str, str], where: dict, color: str) -> list[dict]:
    """The shaded interval of a line: its lower bound, then its upper bound filled down to it."""
    common = {"type": "scatter", "mode": "lines", "x": [where.get(x) for x in l.x], "xaxis": ref[0],
              "yaxis": ref[1], "line": {"width": 0, "color": color}, "hoverinfo": "skip", "showlegend": False,
              "legendgroup": l.group}
    return [{**common, "y": l.lo}, {**common, "y": l.hi, "fill": "tonexty", "fillcolor": color, "opacity": 0.2}]


def _has_mean(fig: F.Lines, group: str) -> bool:
    return any(l.group == group and l.seed is None for l in fig.lines)


def _mark(m: F.Mark, ref: tuple[str, str], where: dict, colors: dict) -> dict:
    color = colors.get(m.group, "#777")
    x0 = where.get(m.x0, m.x0)
    common = {"xref": ref[0], "yref": f"{ref[1]} domain", "y0": 0, "y1": 1, "x0": x0, "layer": "below"}
    if m.x1 is None:
        return {**common, "type": "line", "x1": x0, "line": {"color": color, "width": 1.2, "dash": "dash"}}
    return {**common, "type": "rect", "x1": where.get(m.x1, m.x1), "fillcolor": color, "opacity": 0.07,
            "line": {"width": 0}}


def _heatmap(fig: F.Heatmap, run_colors: dict[str, str]) -> dict:
    mats = fig.drawn()
    refs, layout = grid([m.title for m in mats])
    fmt = fig.fmt.lstrip(":")
    data = []
    for m, (xr, yr) in zip(mats, refs):
        data.append({"type": "heatmap", "z": m.z, "x": [esc(c) for c in m.cols], "y": [esc(r) for r in m.rows],
                     "xaxis": xr, "yaxis": yr, "coloraxis": "coloraxis", "texttemplate": f"%{{z:{fmt}}}",
                     "hovertemplate": f"{esc(fig.row_title)}: %{{y}}<br>{esc(fig.col_title)}: %{{x}}<br>"
                                      f"{esc(fig.z_title)}: %{{z:.4g}}<extra></extra>", "xgap": 1, "ygap": 1})
        layout["yaxis" + yr[1:]].update(autorange="reversed", showgrid=False, ticks="")
        layout["xaxis" + xr[1:]].update(showgrid=False, ticks="", tickangle=-30)
    _title(layout, refs, fig.col_title, fig.row_title)
    scale = "RdBu" if fig.diverging else "Viridis"
    # plotly's RdBu runs blue (low) to red (high): losses that rise are red
    axis = {"colorscale": scale, "colorbar": {"title": {"text": esc(fig.z_title)}, "exponentformat": "e"}}
    if fig.diverging:
        axis["cmid"] = 0
    axis.update({k: v for k, v in (("cmin", fig.zmin), ("cmax", fig.zmax)) if v is not None})
    layout["coloraxis"] = axis
    layout["height"] = min(layout["height"], 120 + 60 * max(len(m.rows) for m in mats)) if mats else 300
    layout["height"] = max(layout["height"], 300)
    return {"data": data, "layout": _base(layout)}


def _histogram(fig: F.Histogram, run_colors: dict[str, str]) -> dict:
    refs, layout = grid([h.title for h in fig.panels])
    data = []
    labels = list(dict.fromkeys(k for h in fig.panels for k in h.counts))
    for h, (xr, yr) in zip(fig.panels, refs):
        centers = [(a + b) / 2 for a, b in zip(h.edges, h.edges[1:])]
        widths = [b - a for a, b in zip(h.edges, h.edges[1:])]
        for label, counts in h.counts.items():
            i = labels.index(label)
            data.append({"type": "bar", "x": centers, "y": counts, "width": widths, "name": esc(label),
                         "legendgroup": label, "showlegend": h is fig.panels[0], "xaxis": xr, "yaxis": yr,
                         "marker": {"color": SERIES[i % len(SERIES)], "line": {"width": 0}}, "opacity": 0.6,
                         "hovertemplate": f"<b>{esc(label)}</b><br>{esc(fig.x_label)}: %{{x:.3f}}<br>"
                                          f"{esc(fig.y_label)}: %{{y}}<extra></extra>"})
    _title(layout, refs, fig.x_label, fig.y_label)
    return {"data": data, "layout": _base({**layout, "barmode": "overlay", "bargap": 0})}


def _scatter(fig: F.Scatter, run_colors: dict[str, str]) -> dict:
    refs, layout = grid([p.title for p in fig.panels], max_cols=2, hgap=0.16)
    data = []
    for p, (xr, yr) in zip(fig.panels, refs):
        dom = layout["xaxis" + xr[1:]]["domain"]
        marker: dict[str, Any] = {"size": 4, "opacity": 0.8}
        if p.categorical:
            cats = sorted({c for c in p.color if c is not None})
            cmap = color_map([str(int(c)) for c in cats])
            marker["color"] = [FAINT if c is None or c < 0 else cmap[str(int(c))] for c in p.color]
        else:
            scale = [[i / (len(CYCLIC) - 1), c] for i, c in enumerate(CYCLIC)] if p.cyclic else "Viridis"
            marker.update(color=p.color, colorscale=scale, showscale=True,
                          colorbar={"title": {"text": esc(p.color_title)}, "x": dom[1] + 0.005, "len": 0.9,
                                    "thickness": 12})
        value = "%{customdata}" if p.categorical else "%{marker.color:.3g}"
        data.append({"type": "scatter", "mode": "markers", "x": p.x, "y": p.y, "xaxis": xr, "yaxis": yr,
                     "marker": marker, "showlegend": False, "name": esc(p.title),
                     "customdata": [("none" if c is None or c < 0 else str(int(c))) for c in p.color]
                     if p.categorical else None,
                     "hovertemplate": f"{esc(p.color_title)}: {value}<extra></extra>"})
    _title(layout, refs, fig.x_label, fig.y_label)
    layout["height"] = max(layout["height"], 420)
    return {"data": data, "layout": _base(layout)}


def _bars(fig: F.Bars, run_colors: dict[str, str]) -> dict:
    refs, layout = grid([b.title for b in fig.panels])
    labels = list(dict.fromkeys(k for b in fig.panels for k in b.values))
    data = []
    for b, (xr, yr) in zip(fig.panels, refs):
        for label, values in b.values.items():
            i = labels.index(label)
            data.append({"type": "bar", "x": [esc(c) for c in b.categories], "y": values, "name": esc(label),
                         "legendgroup": label, "showlegend": b is fig.panels[0], "xaxis": xr, "yaxis": yr,
                         "marker": {"color": SERIES[i % len(SERIES)]},
                         "hovertemplate": f"<b>{esc(label)}</b><br>%{{x}}: %{{y:.4g}}<extra></extra>"})
        layout["yaxis" + yr[1:]]["title"] = {"text": esc(b.y_label)}
        # categories are names even when they read as numbers (steps): plotly would otherwise place "300" and
        # "3000" on a linear axis as thin bars far apart, unlike the PNG
        layout["xaxis" + xr[1:]]["type"] = "category"
    return {"data": data, "layout": _base({**layout, "barmode": "group"})}
