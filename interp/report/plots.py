"""Matplotlib helpers: the Agg pyplot the report's PNG renderer uses, and quick line and heatmap figures for the
``analyses/`` scripts. Analyzers do not draw: they hand figure specs to the report (``interp.report.figures``).
Imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Write a figure as PNG, atomically (``interp.trust.atomic``), and close it."""
    from interp.trust import atomic

    path = Path(path)
    try:
        fig.tight_layout()
        atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        pyplot().close(fig)
    return path


def lines_by_run(series: dict[str, tuple[list[float], list[float]]], title: str, ylabel: str, path: Path,
                 logx: bool = True, spread: dict[str, list[float]] | None = None) -> Path:
    """One line per run (x = training step), with an optional +-spread band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (x, y) in sorted(series.items()):
        xs = [max(v, 1) for v in x] if logx else x
        (line,) = ax.plot(xs, y, marker="o", label=name)
        if spread and name in spread:
            import numpy as np

            lo, hi = np.asarray(y) - np.asarray(spread[name]), np.asarray(y) + np.asarray(spread[name])
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("training step" + (" (step 0 drawn at 1)" if logx else ""))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save(fig, path)


def heatmap(matrix, row_labels: list[str], col_labels: list[str], title: str, path: Path,
            cmap: str = "viridis", fmt: str = "{:.2f}", vmin: float | None = None, vmax: float | None = None) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(col_labels), 1.0 + 0.7 * len(row_labels)))
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i in range(len(row_labels)):
        for j in range(len(col_labels)):
            ax.text(j, i, fmt.format(matrix[i][j]), ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return save(fig, path)
