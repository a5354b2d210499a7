"""Incidental polysemanticity (Lecomte et al., arXiv 2312.03096): does the number of polysemantic neurons of the toy
tied autoencoder ReLU(W W^T x), trained on one-hot features with an L1 penalty on W, follow the paper's n^2 / (4m)?

A sweep over n features and m >= n neurons (``--seeds`` seeds per cell, trained as one batch by
``interp.toys.incidental.train_toy``: AdamW lr 1e-3, L1 1e-3, W ~ N(0, 1/m), stopped once every feature sits on one
neuron). A neuron is polysemantic when more than one feature has |W_ij| in [0.8, 1.2]. Also the paper's noise
variant: no L1, SGD lr 0.02, noise added to the hidden layer; Bernoulli noise (+-sigma) should sparsify the
features' weight vectors (the mean over features of sum_j W_ij^4 rises towards 1) and Gaussian noise should not.

    nice -n 10 python analyses/incidental_polysemanticity.py --out analyses/results/incidental   # ~4 min, 2 cores
    python analyses/incidental_polysemanticity.py --out /tmp/inc --smoke                         # seconds

Writes ``sweep.json`` (per cell: n, m, predicted, per-seed final counts, mean, std, settling steps, the mean count
over training), ``noise.json`` (fourth-norm and count traces per noise kind) and ``incidental.png`` (measured vs
predicted with the seed spread; count over training; the noise runs' fourth norm).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

GRID = {16: (16, 32, 64, 128, 256), 32: (32, 64, 128, 256, 512), 64: (64, 128, 256, 512, 1024)}
SMOKE_GRID = {8: (16, 32)}
NOISES = (("none", 0.0), ("bernoulli", 0.1), ("gaussian", 0.1))


def sweep(grid: dict[int, tuple[int, ...]], seeds: list[int], max_steps: int) -> list[dict]:
    from interp.toys.incidental import ToyConfig, predicted_count, train_toy

    cells = []
    for n, ms in grid.items():
        for m in ms:
            t0 = time.perf_counter()
            run = train_toy(ToyConfig(n_features=n, n_neurons=m, steps=max_steps, record_every=100), seeds, threads=1)
            c = run.final_counts.astype(float)
            cell = {"n": n, "m": m, "predicted": predicted_count(n, m), "counts": run.final_counts.tolist(),
                    "mean": float(c.mean()), "std": float(c.std(ddof=1)) if len(c) > 1 else 0.0,
                    "settled_step": run.settled_step.tolist(), "settled_all": bool((run.settled_step >= 0).all()),
                    "steps": run.steps.tolist(), "mean_count_trace": run.counts.mean(0).round(4).tolist(),
                    "seconds": round(time.perf_counter() - t0, 1)}
            print(f"n {n:3d} m {m:5d}: predicted {cell['predicted']:6.2f}  measured {cell['mean']:5.2f} ± "
                  f"{cell['std']:.2f}  (settled by step {max(cell['settled_step'])}, {cell['seconds']} s)", flush=True)
            cells.append(cell)
    return cells


def noise_runs(seeds: list[int], steps: int) -> list[dict]:
    from interp.toys.incidental import ToyConfig, train_toy

    out = []
    for kind, std in NOISES:
        cfg = ToyConfig(n_features=8, n_neurons=16, l1=0.0, optimizer="sgd", lr=0.02, steps=steps, noise=kind,
                        noise_std=std, stop_when_settled=False, record_every=max(1, steps // 50))
        run = train_toy(cfg, seeds, threads=1)
        out.append({"noise": kind, "std": std, "n": 8, "m": 16, "steps": run.steps.tolist(),
                    "fourth_norm_mean": run.fourth_norm.mean(0).round(5).tolist(),
                    "fourth_norm_final": run.fourth_norm[:, -1].round(5).tolist(),
                    "counts_final": run.final_counts.tolist()})
        print(f"noise {kind} sigma {std}: fourth norm {out[-1]['fourth_norm_mean'][0]:.3f} -> "
              f"{out[-1]['fourth_norm_mean'][-1]:.3f}", flush=True)
    return out


def figure(cells: list[dict], noise: list[dict], path: Path) -> None:
    from interp.report.plots import pyplot, save

    plt = pyplot()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.4))
    ns = sorted({x["n"] for x in cells})
    colors = {n: plt.cm.viridis(i / max(1, len(ns) - 1) * 0.85) for i, n in enumerate(ns)}
    for i, n in enumerate(ns):
        mine = [x for x in cells if x["n"] == n]
        shift = 0.06 * (i - (len(ns) - 1) / 2)   # side by side where cells share a prediction
        a.errorbar([x["predicted"] + shift for x in mine], [x["mean"] for x in mine], yerr=[x["std"] for x in mine],
                   fmt="o", capsize=3, color=colors[n], label=f"n = {n} (m = {mine[0]['m']}..{mine[-1]['m']})")
    hi = max(max(x["predicted"], x["mean"] + x["std"]) for x in cells) * 1.05
    a.plot([0, hi], [0, hi], "k--", lw=1, label="measured = n²/4m")
    a.set_xlabel("predicted n²/(4m)")
    a.set_ylabel("polysemantic neurons (mean ± std over seeds)")
    a.set_title(f"Measured vs predicted, {len(cells[0]['counts'])} seeds per (n, m)")
    a.legend(fontsize=8)
    for x in cells:
        if x["n"] == ns[-1] or len(ns) == 1:
            (line,) = b.plot(np.maximum(x["steps"], 1), x["mean_count_trace"], label=f"n {x['n']}, m {x['m']}")
            b.axhline(x["predicted"], color=line.get_color(), ls=":", lw=1)
    b.set_xscale("log")
    b.set_xlabel("training step (step 0 at 1)")
    b.set_ylabel("polysemantic neurons (mean over seeds)")
    b.set_title(f"Count over training, n = {ns[-1]} (dotted: n²/4m)")
    b.legend(fontsize=8)
    for x in noise:
        c.plot(np.maximum(x["steps"], 1), x["fourth_norm_mean"], label=f"{x['noise']}, σ = {x['std']}")
    c.set_xscale("log")
    c.set_xlabel("training step (step 0 at 1)")
    c.set_ylabel("mean over features of Σ_j W_ij⁴")
    c.set_title("Noise variant (no L1, n 8, m 16): sparsity")
    c.legend(fontsize=8)
    save(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=30_000)
    ap.add_argument("--noise-steps", type=int, default=50_000)
    ap.add_argument("--smoke", action="store_true", help="a tiny grid and short noise runs (seconds)")
    ap.add_argument("--replot", action="store_true", help="redraw the figure from the JSON files in --out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        cells = json.loads((args.out / "sweep.json").read_text())["cells"]
        figure(cells, json.loads((args.out / "noise.json").read_text())["runs"], args.out / "incidental.png")
        return
    grid = SMOKE_GRID if args.smoke else GRID
    seeds = list(range(3 if args.smoke else args.seeds))
    t0 = time.perf_counter()
    cells = sweep(grid, seeds, args.max_steps)
    noise = noise_runs(seeds[:4], 300 if args.smoke else args.noise_steps)
    meta = {"paper": "Lecomte et al., arXiv 2312.03096", "seeds": seeds, "max_steps": args.max_steps,
            "setup": "ReLU(W W^T x) on one-hot features, sum of squared errors + 1e-3 * sum|W|, AdamW lr 1e-3 "
                     "(weight decay 0.01), W ~ N(0, 1/m); polysemantic: > 1 feature with |W_ij| in [0.8, 1.2]"}
    (args.out / "sweep.json").write_text(json.dumps({**meta, "cells": cells}, indent=1))
    (args.out / "noise.json").write_text(json.dumps({"paper": meta["paper"], "runs": noise}, indent=1))
    figure(cells, noise, args.out / "incidental.png")
    print("\n| n | m | n²/(4m) | measured (mean ± std) |\n|---|---|---|---|")
    for x in cells:
        print(f"| {x['n']} | {x['m']} | {x['predicted']:.2f} | {x['mean']:.2f} ± {x['std']:.2f} |")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
