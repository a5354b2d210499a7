"""Competition for neurons (Huang et al., arXiv 2605.29548), with interp's public API only.

1. A width x rare-task-frequency grid: the bundled competition mixture (common lookup task, 256 facts, 30% of
   sequences; rare lookup task, 576 facts) trained at several MLP widths and rare-task frequencies; the paper's
   heatmap analogue is the rare task's accuracy at the last step, by width and frequency.
2. Matched-frequency injection: the rare task withheld for N - 1 batches and then injected N batches' worth at
   once (same global frequency), N in {1, 10, 50}; the rare-task loss averaged over the last injection cycles
   shows whether a model forgets between injections.

    python analyses/competition_for_neurons.py --out competition/          # full grid, ~15 min on 2 cores
    python analyses/competition_for_neurons.py --out /tmp/c --smoke        # seconds (the test suite runs this)

Writes ``grid.csv``, ``matched.csv``, ``rare_accuracy_heatmap.png`` and ``matched_injection.png``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_bundled import competition_config  # noqa: E402  (the bundled series' own recipe)


@dataclass(frozen=True)
class Grid:
    widths: tuple[int, ...] = (8, 32, 256)
    freqs: tuple[float, ...] = (0.01, 0.03, 0.05, 0.1)
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 2000
    gaps: tuple[int, ...] = (1, 10, 50)
    matched_widths: tuple[int, ...] = (8, 256)
    matched_freq: float = 0.05


SMOKE = Grid(widths=(4, 16), freqs=(0.05, 0.2), seeds=(0,), steps=20, gaps=(1, 5), matched_widths=(4,))


def train_one(job: tuple) -> dict:
    """One training run; returns its final metrics (a pure function of the job, so runs can go in parallel)."""
    import torch

    import interp

    kind, width, freq, seed, gap, steps, out = job
    torch.set_num_threads(1)
    cfg = competition_config(f"{kind}_w{width}_f{freq}_g{gap}", width, seed, n_steps=steps, rare_frequency=freq,
                             injection_gap=gap)
    if kind == "matched":
        # evaluate across the last few injection cycles: a model that forgets between bursts is caught mid-cycle
        window = max(2 * gap, 10)
        cfg = replace(cfg, checkpoint_steps=tuple(sorted({0, *range(steps - window, steps + 1, max(1, gap // 5))})))
    else:
        cfg = replace(cfg, n_checkpoints=2)
    t0 = time.time()
    entries = interp.train(cfg, Path(out) / kind, progress=False)
    tail = [e for e in entries if e.step > 0] if kind == "matched" else entries[-1:]
    mean = lambda key: float(np.mean([e.metrics[key] for e in tail]))  # noqa: E731
    return {"kind": kind, "d_mlp": width, "rare_frequency": freq, "seed": seed, "injection_gap": gap,
            "steps": steps, "common_accuracy": mean("common/accuracy"), "rare_accuracy": mean("rare/accuracy"),
            "rare_loss": mean("rare/loss"), "seconds": round(time.time() - t0, 1)}


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def draw(grid_rows: list[dict], matched_rows: list[dict], g: Grid, out: Path) -> None:
    from interp.report.plots import heatmap, lines_by_run

    acc = np.array([[np.mean([r["rare_accuracy"] for r in grid_rows if r["d_mlp"] == w and r["rare_frequency"] == f])
                     for f in g.freqs] for w in g.widths])
    heatmap(acc, [f"d_mlp {w}" for w in g.widths], [f"{f:g}" for f in g.freqs],
            f"rare-task accuracy at step {g.steps} (mean of {len(g.seeds)} seeds) by width and frequency",
            out / "rare_accuracy_heatmap.png", cmap="viridis", vmin=0, vmax=1)
    series = {f"d_mlp {w}": (list(g.gaps), [float(np.mean([r["rare_loss"] for r in matched_rows
                                                             if r["d_mlp"] == w and r["injection_gap"] == n]))
                                            for n in g.gaps]) for w in g.matched_widths}
    lines_by_run(series, f"rare-task loss vs injection gap N (frequency {g.matched_freq} either way)",
                 "rare-task test loss (mean over last cycles)", out / "matched_injection.png")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("competition"))
    ap.add_argument("--smoke", action="store_true", help="a tiny grid that runs in seconds")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    g = SMOKE if args.smoke else Grid()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [("grid", w, f, s, 1, g.steps, str(args.out)) for w in g.widths for f in g.freqs for s in g.seeds]
    jobs += [("matched", w, g.matched_freq, s, n, g.steps, str(args.out))
             for w in g.matched_widths for n in g.gaps for s in g.seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(train_one, jobs))
    grid_rows = [r for r in rows if r["kind"] == "grid"]
    matched_rows = [r for r in rows if r["kind"] == "matched"]
    write_csv(grid_rows, args.out / "grid.csv")
    write_csv(matched_rows, args.out / "matched.csv")
    draw(grid_rows, matched_rows, g, args.out)
    print("rare-task accuracy (rows: d_mlp; columns: frequency)")
    print("d_mlp  " + "  ".join(f"{f:>6g}" for f in g.freqs))
    for w in g.widths:
        cells = [np.mean([r["rare_accuracy"] for r in grid_rows if r["d_mlp"] == w and r["rare_frequency"] == f])
                 for f in g.freqs]
        print(f"{w:>5}  " + "  ".join(f"{c:6.2f}" for c in cells))
    print("matched injection: rare-task loss by gap N")
    for w in g.matched_widths:
        print(f"d_mlp {w}: " + ", ".join(
            f"N={n}: "
            f"{np.mean([r['rare_loss'] for r in matched_rows if r['d_mlp'] == w and r['injection_gap'] == n]):.3f}"
            for n in g.gaps))


if __name__ == "__main__":
    main()
