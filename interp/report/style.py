"""Colours and the one place that decides how step axes are drawn, shared by both renderers so the PNG and the
interactive figure of a spec look alike."""

from __future__ import annotations

import html
import math
import re

# Okabe-Ito, colour-blind safe, without its yellow (unreadable on white); runs take these in order
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B",
           "#17BECF", "#BCBD22", "#9467BD", "#E41A1C", "#1B3A6B", "#7A9E1F", "#F781BF", "#A65628", "#5E3C99",
           "#66C2A5")   # no grey: grey is for context lines
FAINT = "#c4c4c4"
# cmocean "phase": a cyclic scale for angles (plotly.js knows no cyclic scale by name)
CYCLIC = ("#a7770c", "#c56033", "#d94360", "#dd26a3", "#c43be0", "#9961f4", "#5f7fe4", "#2890b7", "#0f9788",
          "#27994f", "#778d11", "#a7770c")
SERIES = ("#0072B2", "#8a8a8a", "#D55E00", "#009E73", "#CC79A7", "#E69F00")   # histogram / bar series


def color_map(groups: list[str], fixed: dict[str, str] | None = None) -> dict[str, str]:
    """A colour per group: ``fixed`` ones first (the runs, the same colour in every figure), the rest from the
    palette in order, skipping colours the fixed ones took."""
    fixed = {g: c for g, c in (fixed or {}).items() if g in groups}   # only the runs this figure shows
    free = [c for c in PALETTE if c not in fixed.values()] or list(PALETTE)
    out, i = {}, 0
    for g in groups:
        if g in fixed:
            out[g] = fixed[g]
        elif g not in out:
            out[g] = free[i % len(free)]
            i += 1
    return out


def run_colors(runs: list[str]) -> dict[str, str]:
    return {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(sorted(runs))}


def log_positions(xs: list[float]) -> dict[float, float]:
    """Where each x is drawn on a log axis: positive values where they are; 0 (step 0) half of the smallest
    positive value, so it is neither lost nor drawn on top of step 1 (its tick is labelled 0)."""
    pos = [x for x in xs if x is not None and x > 0]
    lowest = min(pos) if pos else 1.0
    return {x: (x if x > 0 else lowest / 2) for x in xs if x is not None}


def log_ticks(xs: list[float], where: dict[float, float], limit: int = 10) -> tuple[list[float], list[str]]:
    """Tick positions and labels for a log axis of steps (or widths): every distinct value when there are few
    (log-spaced checkpoints), else the decades, plus step 0 where ``log_positions`` put it."""
    distinct = sorted({x for x in xs if x is not None})
    if not distinct:
        return [], []
    if len(distinct) > limit:
        pos = [x for x in distinct if x > 0] or [1.0]
        lo, hi = math.floor(math.log10(min(pos))), math.ceil(math.log10(max(pos)))
        distinct = [x for x in distinct if x <= 0] + [10.0 ** e for e in range(lo, hi + 1)
                                                      if min(pos) <= 10.0 ** e <= max(pos)]
    return [where.get(x, x) for x in distinct], [tick_text(x) for x in distinct]


def tick_text(x: float) -> str:
    if x == int(x):
        return f"{int(x):,}"
    return f"{x:g}"


def esc(text: str) -> str:
    """Text for a plotly label (plotly reads a little HTML in labels: names from a manifest must not be markup)."""
    return html.escape(str(text), quote=False)


def nice_grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = 2 if n == 4 and max_cols >= 2 else (min(n, max_cols) or 1)
    return math.ceil(n / cols), cols


def natural_key(text: str) -> list:
    """Sort "k=2" before "k=12" and "latent 3" before "latent 10"."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]
