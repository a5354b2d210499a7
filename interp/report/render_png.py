"""Figure spec -> PNG (matplotlib, Agg): the static twin of the interactive figure, for papers and the index
thumbnails. Same colours, same step axis (``interp.report.style``); the title is wrapped, never cut off."""

from __future__ import annotations

import textwrap
from pathlib import Path

from interp.report import figures as F
from interp.report.plots import pyplot
from interp.report.style import CYCLIC, FAINT, SERIES, color_map, log_positions, log_ticks, natural_key, nice_grid

PANEL_W, PANEL_H = 4.6, 3.3


def render(fig: F.Figure, path: Path, run_colors: dict[str, str] | None = None) -> Path:
    """Write the PNG of a drawn figure (call only when ``fig.why_not_drawn()`` is empty)."""
    draw = {"lines": _lines, "heatmap": _heatmap, "histogram": _histogram, "scatter": _scatter, "bars": _bars}
    n = {"lines": lambda f: len(f.panels()), "heatmap": lambda f: len(f.drawn())}.get(fig.kind,
                                                                                     lambda f: len(f.panels))(fig)
    plt = pyplot()
    rows, cols = nice_grid(max(1, n), 2 if fig.kind == "scatter" else 3)
    wide = 1.4 if fig.kind in ("lines", "histogram", "bars") else 0.9
    size = (PANEL_W * cols + wide, PANEL_H * rows + 0.7)
    mfig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    flat = [a for row in axes for a in row]
    for extra in flat[n:]:
        extra.set_visible(False)
    draw[fig.kind](fig, flat[:n], mfig, run_colors or {})
    width_chars = int((size[0] - wide) * 12)
    mfig.suptitle("\n".join(textwrap.wrap(fig.title, width_chars)), fontsize=11)
    return save(mfig, path)


def save(mfig, path: Path) -> Path:
    """Write atomically (``interp.trust.atomic``: temp, fsync, rename) and close the figure."""
    from interp.trust import atomic

    try:
        atomic.write_with(Path(path), lambda tmp: mfig.savefig(tmp, dpi=100, format="png"))
    finally:
        pyplot().close(mfig)
    return Path(path)


def _lines(fig: F.Lines, axes, mfig, run_colors) -> None:
    panels = fig.panels()
    xs = [x for l in fig.lines for x in l.x]
    where = log_positions(xs) if fig.log_x else {x: x for x in xs if x is not None}
    colors = color_map([l.group for l in fig.lines if not l.faint], run_colors)
    vals, texts = log_ticks(xs, where) if fig.log_x else ([], [])
    handles: dict[str, object] = {}
    for l in sorted(fig.lines, key=lambda l: (not l.faint, l.seed is None)):
        ax = axes[panels.index(l.panel)]
        mean = l.seed is None
        color = FAINT if l.faint else colors[l.group]
        x = [where.get(v, float("nan")) if v is not None else float("nan") for v in l.x]
        y = [float("nan") if v is None else v for v in l.y]
        if l.lo is not None:
            ax.fill_between(x, [float("nan") if v is None else v for v in l.lo],
                            [float("nan") if v is None else v for v in l.hi], color=color, alpha=0.18, lw=0, zorder=0)
        (h,) = ax.plot(x, y, color=color, lw=0.8 if l.faint else (2.4 if mean else 0.9),
                       alpha=1.0 if mean or l.faint else 0.45,
                       marker="x" if l.points else ("o" if len(x) <= 16 else None), ls="none" if l.points else "-",
                       ms=6 if l.points else (3.5 if mean and not l.faint else 2),
                       zorder=1 if l.faint else (3 if mean else 2))
        if (mean or l.faint or l.group not in handles) and ("faint" if l.faint else l.group) not in handles:
            handles["faint" if l.faint else l.group] = (h, l.group)
    for m in fig.marks:
        ax = axes[panels.index(m.panel)] if m.panel in panels else axes[0]
        c = colors.get(m.group, "0.5")
        if m.x1 is None:
            ax.axvline(where.get(m.x0, m.x0), color=c, lw=1, ls="--", zorder=0)
        else:
            ax.axvspan(where.get(m.x0, m.x0), where.get(m.x1, m.x1), color=c, alpha=0.07, lw=0, zorder=0)
    for ax, panel in zip(axes, panels):
        if fig.log_x:
            ax.set_xscale("log")
            if vals:
                ax.set_xticks(vals, texts, fontsize=7)
                ax.minorticks_off()
        if fig.log_y:
            ax.set_yscale("log")
        if fig.zero_line:
            ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xlabel(fig.x_label + (" (log scale)" if fig.log_x else ""), fontsize=9)
        ax.set_ylabel(_wrap(fig.y_labels.get(panel, fig.y_label), 40), fontsize=9)
        _panel_title(ax, panel, len(panels))
        ax.grid(alpha=0.3)
    order = sorted(handles, key=lambda k: (k == "faint", natural_key(handles[k][1])))
    _legend(mfig, [handles[k][0] for k in order], [handles[k][1] for k in order], fig.group_title)


def _legend(mfig, handles, labels, title: str) -> None:
    if not handles:
        return
    ncol = 1 if len(handles) <= 14 else 2
    mfig.legend(handles, labels, title=title or None, loc="outside right center", fontsize=8, title_fontsize=8,
                frameon=False, ncol=ncol)


def _panel_title(ax, title: str, n: int) -> None:
    if title and n > 1:
        ax.set_title(_wrap(title, 45), fontsize=10)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) if text else ""


def _heatmap(fig: F.Heatmap, axes, mfig, run_colors) -> None:
    import numpy as np

    mats = fig.drawn()
    cmap = "RdBu_r" if fig.diverging else "viridis"
    vals = [v for m in mats for r in m.z for v in r if v is not None]
    vmin = fig.zmin if fig.zmin is not None else min(vals)
    vmax = fig.zmax if fig.zmax is not None else max(vals)
    if fig.diverging:
        lim = max(abs(vmin), abs(vmax)) or 1.0
        vmin, vmax = -lim, lim
    im = None
    for ax, m in zip(axes, mats):
        z = np.array([[np.nan if v is None else v for v in r] for r in m.z], dtype=float)
        im = ax.imshow(z, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(m.cols)), m.cols, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(m.rows)), m.rows, fontsize=8)
        for i in range(len(m.rows)):
            for j in range(len(m.cols)):
                if np.isfinite(z[i, j]):
                    shade = (z[i, j] - vmin) / ((vmax - vmin) or 1)
                    dark = shade < 0.55 if not fig.diverging else abs(shade - 0.5) > 0.3
                    ax.text(j, i, format(z[i, j], fig.fmt.lstrip(":")), ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
        ax.set_xlabel(fig.col_title, fontsize=9)
        ax.set_ylabel(fig.row_title, fontsize=9)
        _panel_title(ax, m.title, len(mats))
    if im is not None:
        mfig.colorbar(im, ax=axes, label=fig.z_title, shrink=0.9)


def _histogram(fig: F.Histogram, axes, mfig, run_colors) -> None:
    labels = list(dict.fromkeys(k for h in fig.panels for k in h.counts))
    handles = {}
    for ax, h in zip(axes, fig.panels):
        for label, counts in h.counts.items():
            color = SERIES[labels.index(label) % len(SERIES)]
            bars = ax.stairs(counts, h.edges, fill=True, alpha=0.55, color=color)
            handles.setdefault(label, bars)
        ax.set_xlabel(fig.x_label, fontsize=9)
        ax.set_ylabel(fig.y_label, fontsize=9)
        _panel_title(ax, h.title, len(fig.panels))
    _legend(mfig, list(handles.values()), list(handles), "")


def _scatter(fig: F.Scatter, axes, mfig, run_colors) -> None:
    import numpy as np

    for ax, p in zip(axes, fig.panels):
        x = np.array([np.nan if v is None else v for v in p.x], dtype=float)
        y = np.array([np.nan if v is None else v for v in p.y], dtype=float)
        c = np.array([np.nan if v is None else v for v in p.color], dtype=float)
        if p.categorical:
            cats = sorted({int(v) for v in c[np.isfinite(c)] if v >= 0})
            cmap = color_map([str(v) for v in cats])
            colors = [FAINT if not np.isfinite(v) or v < 0 else cmap[str(int(v))] for v in c]
            ax.scatter(x, y, c=colors, s=4)
        else:
            from matplotlib.colors import LinearSegmentedColormap

            cmap = LinearSegmentedColormap.from_list("cyclic", CYCLIC) if p.cyclic else "viridis"
            sc = ax.scatter(x, y, c=c, cmap=cmap, s=4)
            mfig.colorbar(sc, ax=ax, label=p.color_title, shrink=0.85)
        ax.set_xlabel(fig.x_label, fontsize=9)
        ax.set_ylabel(fig.y_label, fontsize=9)
        _panel_title(ax, p.title, 2)


def _bars(fig: F.Bars, axes, mfig, run_colors) -> None:
    import numpy as np

    labels = list(dict.fromkeys(k for b in fig.panels for k in b.values))
    handles = {}
    for ax, b in zip(axes, fig.panels):
        x = np.arange(len(b.categories))
        w = 0.8 / max(1, len(b.values))
        for i, (label, values) in enumerate(b.values.items()):
            v = [np.nan if u is None else u for u in values]
            handles[label] = ax.bar(x + (i - (len(b.values) - 1) / 2) * w, v, w,
                                    color=SERIES[labels.index(label) % len(SERIES)])
        ax.set_xticks(x, b.categories, fontsize=8)
        ax.set_ylabel(b.y_label, fontsize=9)
        _panel_title(ax, b.title, 2)
    _legend(mfig, list(handles.values()), list(handles), "")
