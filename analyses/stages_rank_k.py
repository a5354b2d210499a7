"""Stages from small initialisation, a known case for the ``stages`` analyzer's curve functions: a rank-k product
target learned from small init shows k successive drops, and the plateaus lengthen as the init shrinks.

A two-layer linear network W2 W1 (d x h x d) is trained by full-batch gradient descent on the population loss
``||W2 W1 - M||_F^2 / 2`` for a rank-k target ``M = U diag(s) V^T`` (distinct singular values), from entries
N(0, init^2). The loss curve is handed to ``interp.analyzers.stages.curves.s_curve_drops``, the function the
``stages`` analyzer uses on checkpoint series.

    python analyses/stages_rank_k.py --out analyses/results/stages    # seconds

Writes ``drops.csv`` (one row per init scale and drop) and ``rank_k_loss.png``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def train(singular_values, init: float, d: int = 8, steps: int = 4000, lr: float = 0.05, seed: int = 0) -> np.ndarray:
    """[steps + 1] population loss of W2 W1 trained on the rank-k target, float64."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(d, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    k = len(singular_values)
    target = u[:, :k] @ np.diag(singular_values) @ v[:, :k].T
    w1, w2 = init * rng.normal(size=(d, d)), init * rng.normal(size=(d, d))
    loss = np.zeros(steps + 1)
    for t in range(steps + 1):
        err = w2 @ w1 - target
        loss[t] = 0.5 * np.sum(err ** 2)
        w1, w2 = w1 - lr * w2.T @ err, w2 - lr * err @ w1.T
    return loss


def main() -> None:
    from interp.analyzers.stages.curves import s_curve_drops
    from interp.report.plots import pyplot, save

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--singular-values", type=float, nargs="+", default=[4.0, 2.0, 1.0])
    ap.add_argument("--inits", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4, 1e-5])
    ap.add_argument("--steps", type=int, default=4000)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    steps = np.arange(args.steps + 1)
    for init in args.inits:
        loss = train(args.singular_values, init, steps=args.steps)
        drops = s_curve_drops(steps, loss)
        (line,) = ax.plot(steps + 1, loss, label=f"init {init:g}: {len(drops)} drops")
        for i, dr in enumerate(drops):
            ax.axvspan(dr.onset_step + 1, dr.end_step + 1, color=line.get_color(), alpha=0.08)
            rows.append({"init": init, "drop": i + 1, "n_drops": len(drops), "onset_step": round(dr.onset_step, 1),
                         "end_step": round(dr.end_step, 1), "fall": round(dr.fall, 4)})
    ax.set_xscale("log")
    ax.set_xlabel("step + 1")
    ax.set_ylabel("loss ||W2 W1 - M||^2 / 2")
    ax.set_title(f"rank-{len(args.singular_values)} target, singular values {args.singular_values}")
    ax.legend(fontsize=8)
    save(fig, args.out / "rank_k_loss.png")
    with open(args.out / "drops.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(r)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
