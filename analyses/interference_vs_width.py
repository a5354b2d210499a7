"""Gradient interference on the rare task, by width (shared/SCIENCE.md section 2), with interp's public API only.

The paper reports cos(g_nt, g_rare) -- the gradient of a mixed batch's non-task tokens against the rare task's
reference gradient, on the rare task's neurons -- at 0.10 +- 0.09 in a 20M model and 0 +- 0.02 in a 1B one. This
script measures it on the bundled competition series (``narrow``: d_mlp 8, ``wide``: d_mlp 256, both d_model 64)
and, with ``--scaled``, on a series whose wide model also has twice the residual width (d_model 128, d_mlp 256),
trained here with the bundled recipe. For each run it writes the mean over seeds of |cos(g_nt, g_rare)| and of the
rare-task interference ratio (|interference[other task, rare]| / |interference[rare, rare]|), as the plain mean
over the log-spaced checkpoints and step-weighted over training, plus the analyzer's figures.

    python analyses/interference_vs_width.py --out analyses/results/interference            # bundle, ~2 min
    python analyses/interference_vs_width.py --out analyses/results/interference --scaled   # + ~8 min training

Writes ``table.csv``, ``table.md``, ``cos_nt_vs_step.png`` and ``interference_ratio_vs_step.png`` (every run, mean
and spread over seeds of the absolute values), and each run's interference matrix at its last step.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_bundled import SEEDS, competition_config, competition_model  # noqa: E402

SCALED = {"wide-dmodel128": (128, 256)}      # run -> (d_model, d_mlp)
KEYS = (("rare_nt_cosine_mean", "cos_nt"), ("rare_task_interference_ratio", "interference_ratio"))
COLUMNS = ("run", "d_model", "d_mlp", "seeds", "cos_nt_mean_over_checkpoints", "cos_nt_step_weighted",
           "cos_nt_spread_over_batches", "interference_ratio_mean_over_checkpoints", "interference_ratio_step_weighted")


def train_scaled(out: Path, jobs: int) -> None:
    configs = []
    for run, (d_model, d_mlp) in SCALED.items():
        for seed in SEEDS:
            c = competition_config(run, d_mlp, seed)
            configs.append(replace(c, model=competition_model(d_mlp, d_model), labels={**c.labels, "d_model": d_model}))
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_train, configs, [out] * len(configs)))


def _train(config, out: Path) -> None:
    import torch

    from interp import train

    torch.set_num_threads(1)
    train(config, out, progress=False)


def measure(source, runs: tuple[str, ...], out: Path, n_batches: int) -> tuple[list[dict], dict]:
    """Table rows, and {key: {run: (steps, mean over seeds of |value|, spread over seeds)}} for the figures."""
    import numpy as np

    import interp
    from interp.analyzers.grad_interference import step_weighted_mean

    series = interp.load_series(source)
    report = interp.analyze(series, ["grad-interference"], {"grad-interference": {"n_batches": n_batches}},
                            interp.RunOptions(out_dir=out, runs=runs, progress=True))
    per_run = report.summaries["grad-interference"]["per_run"]
    rows, curves = [], {key: {} for key, _ in KEYS}
    for run in runs:
        model = series.run(run).model
        row = {"run": run, "d_model": model["d_model"], "d_mlp": model["d_mlp"]}
        steps = sorted(per_run[run], key=int)
        for key, col in KEYS:
            per_seed = np.abs([list(per_run[run][st][key]["per_seed"].values()) for st in steps])   # [step, seed]
            x = [int(st) for st in steps]
            curves[key][run] = (x, per_seed.mean(1).tolist(), per_seed.std(1).tolist())
            row[f"{col}_mean_over_checkpoints"] = round(float(per_seed.mean()), 4)
            row[f"{col}_step_weighted"] = round(step_weighted_mean(x, per_seed.mean(1)), 4)
            row["seeds"] = per_seed.shape[1]
        spreads = [v for st in steps for v in per_run[run][st]["rare_nt_cosine_std"]["per_seed"].values()]
        row["cos_nt_spread_over_batches"] = round(float(np.mean(spreads)), 4)
        rows.append(row)
    return rows, curves


def draw(curves: dict, out: Path) -> None:
    from interp.report.plots import lines_by_run

    for (key, col), title, ylabel in zip(KEYS, (
            "|cos(g_nt, g_rare)| on the rare task's neurons (mean over batches)",
            "other task's step on the rare loss, per unit of the rare task's own"),
            ("|cos| (mean over seeds, band: spread over seeds)",
             "|I[j, rare]| / |I[rare, rare]| (mean over seeds)")):
        series = {run: (x, y) for run, (x, y, _) in curves[key].items()}
        spread = {run: sd for run, (_, _, sd) in curves[key].items()}
        lines_by_run(series, title, ylabel, out / f"{col}_vs_step.png", spread=spread)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scaled", action="store_true", help="also train and measure the d_model-scaled wide run")
    ap.add_argument("--n-batches", type=int, default=16, help="mixed batches per checkpoint for the split")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    rows, curves = measure(None, ("narrow", "wide"), work / "bundled", args.n_batches)
    matrices = [work / "bundled" / "grad-interference"]
    if args.scaled:
        series_dir = work / "scaled-series"
        if not (series_dir / "manifest.yaml").exists():
            train_scaled(series_dir, args.jobs)
        more_rows, more = measure(series_dir, tuple(SCALED), work / "scaled", args.n_batches)
        rows += more_rows
        for key in curves:
            curves[key].update(more[key])
        matrices.append(work / "scaled" / "grad-interference")
    draw(curves, args.out)
    for d in matrices:
        for png in d.glob("interference_*.png"):
            shutil.copy(png, args.out / png.name)
    with open(args.out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
