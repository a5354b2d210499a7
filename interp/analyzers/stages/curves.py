"""Shapes of curves over training steps: s-curve drops in a loss, zero crossings of a rate (for ``stages``;
Hoogland et al., arXiv 2402.02364).

Both work in log-steps (``log10(step + 1)``), where learning curves of multi-component learning look like a series
of plateaus and sigmoid drops, and both accept dense curves (every step of a toy model) or the few log-spaced
checkpoints of a series (linear interpolation in log-step in between).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Drop:
    onset_step: float      # where the loss starts falling fast
    end_step: float        # where it stops
    width_decades: float   # log10(end / onset)
    fall: float            # loss lost over the drop
    fraction: float        # fall / (max - min of the whole curve)

    def as_dict(self) -> dict:
        return asdict(self)


def log_steps(steps) -> np.ndarray:
    return np.log10(np.asarray(steps, dtype=float) + 1)


def s_curve_drops(steps, loss, rate_fraction: float = 0.02, min_fraction: float = 0.02,
                  grid: int = 400) -> list[Drop]:
    """The drops of a loss curve: maximal runs of log-steps where the loss falls faster than ``rate_fraction`` of
    its fastest fall (per decade), each losing at least ``min_fraction`` of the curve's range, separated by
    plateaus (or rises). A plateau-then-drop curve has one; a rank-k target learned from small init has k."""
    x, y = log_steps(steps), np.asarray(loss, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(x) < 3 or np.ptp(y) == 0:
        return []
    g = np.linspace(x[0], x[-1], grid)
    yg = np.interp(g, x, y)
    rate = -np.gradient(yg, g)                                   # loss lost per decade
    fast = rate > rate_fraction * rate.max()
    drops, i = [], 0
    while i < grid:
        if not fast[i]:
            i += 1
            continue
        j = i
        while j + 1 < grid and fast[j + 1]:
            j += 1
        fall = yg[i] - yg[j]
        if fall >= min_fraction * np.ptp(y):
            drops.append(Drop(float(10 ** g[i] - 1), float(10 ** g[j] - 1), float(g[j] - g[i]), float(fall),
                              float(fall / np.ptp(y))))
        i = j + 1
    return drops


def rate_zero_crossings(steps, values, smooth: int = 1, min_rate_fraction: float = 0.05) -> list[float]:
    """Steps where ``d values / d log-step`` changes sign (after a centred moving average of ``2 * smooth + 1``
    points over the rate): the stage boundaries of an LLC curve. Rates below ``min_rate_fraction`` of the largest
    count as flat (no sign), so chain noise on a plateau makes no boundary. Each crossing is placed at the geometric
    middle of the two steps whose rates differ in sign."""
    x, v = log_steps(steps), np.asarray(values, dtype=float)
    order = np.argsort(x)
    x, v = x[order], v[order]
    if len(x) < 3:
        return []
    mid = (x[1:] + x[:-1]) / 2
    rate = np.diff(v) / np.diff(x)
    if smooth and len(rate) > 2 * smooth:
        kernel = np.ones(2 * smooth + 1) / (2 * smooth + 1)
        rate = np.convolve(np.pad(rate, smooth, mode="edge"), kernel, mode="valid")
    sign = np.where(np.abs(rate) >= min_rate_fraction * np.abs(rate).max(), np.sign(rate), 0)
    nonflat = np.flatnonzero(sign)
    return [float(10 ** ((mid[i] + mid[j]) / 2) - 1) for i, j in zip(nonflat, nonflat[1:]) if sign[i] != sign[j]]
