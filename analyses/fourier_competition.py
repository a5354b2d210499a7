"""Survival of the fittest among Fourier circles (Ding et al., arXiv 2405.17420).

The paper's own setup, trained here: p = 59, an embedding E in R^{p x d}, input [E_a; E_b], an MLP 2d-100-100-p
with SiLU, AdamW lr 1e-2 weight decay 0.5, full batch on 80% of the pairs. Every step records the embedding's
Fourier signal s_k (``interp.maths.manifolds.embedding_spectrum``, the same function the ``fourier-competition``
analyzer uses on transformer checkpoints). Per embedding width d and seed: the circles that survive (s_k > 2 mean
s), test accuracy, whether the frequencies with the highest initial signal and gradient are the survivors (AUROC
pooled over seeds), and the paper's linear dynamics ``s(t+1) - s(t) = A s(t) + b`` fitted by Lasso (alpha 0.01) on
the first ``--fit-steps`` steps: R^2 of the fit and the relative error of its rollout from s(0).

    python analyses/fourier_competition.py --out analyses/results/fourier            # ~5 min on 2 cores
    python analyses/fourier_competition.py --out /tmp/f --dims 8 --seeds 0 --steps 50 # seconds (smoke)

Writes ``runs.csv`` (one row per d and seed), ``by_width.csv``, ``circles_vs_width.png`` and
``trajectories.png`` (signal of every frequency vs step for one seed per width, survivors coloured, with the
fitted dynamics' rollout dashed).
"""

from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

P = 59


@dataclass(frozen=True)
class RunSpec:
    d: int
    seed: int
    steps: int = 1000
    fit_steps: int = 200
    lr: float = 1e-2
    weight_decay: float = 0.5
    train_fraction: float = 0.8


def train_one(spec: RunSpec) -> dict:
    import torch

    from interp.maths.manifolds import embedding_spectrum

    torch.set_num_threads(1)
    torch.manual_seed(spec.seed)
    emb = torch.nn.Parameter(torch.randn(P, spec.d))
    mlp = torch.nn.Sequential(torch.nn.Linear(2 * spec.d, 100), torch.nn.SiLU(), torch.nn.Linear(100, 100),
                              torch.nn.SiLU(), torch.nn.Linear(100, P))
    a, b = (g.ravel() for g in np.meshgrid(np.arange(P), np.arange(P), indexing="ij"))
    order = np.random.default_rng(spec.seed).permutation(len(a))
    n_train = int(spec.train_fraction * len(a))
    a, b, y = (torch.as_tensor(v) for v in (a, b, (a + b) % P))
    tr, te = torch.as_tensor(order[:n_train]), torch.as_tensor(order[n_train:])
    opt = torch.optim.AdamW([emb, *mlp.parameters()], lr=spec.lr, weight_decay=spec.weight_decay)

    def logits(idx):
        return mlp(torch.cat([emb[a[idx]], emb[b[idx]]], 1))

    signal = np.zeros((spec.steps + 1, (P - 1) // 2))
    grad0 = None
    for step in range(spec.steps + 1):
        signal[step] = embedding_spectrum(emb.detach().double().numpy())
        if step == spec.steps:
            break
        loss = torch.nn.functional.cross_entropy(logits(tr), y[tr])
        opt.zero_grad()
        loss.backward()
        if step == 0:
            grad0 = embedding_spectrum(emb.grad.double().numpy())
        opt.step()
    with torch.no_grad():
        acc = float((logits(te).argmax(1) == y[te]).float().mean())
    return {"spec": spec, "signal": signal, "grad0": grad0, "test_acc": acc}


def fit_dynamics(signal: np.ndarray, fit_steps: int) -> dict:
    """Lasso fit of s(t+1) - s(t) = A s(t) + b over the first ``fit_steps`` steps; R^2 and the rollout from s(0)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    warnings.simplefilter("ignore", ConvergenceWarning)   # a few outputs stop at max_iter; R^2 reports the fit

    s = signal[:fit_steps + 1]
    model = Lasso(alpha=0.01, max_iter=20000).fit(s[:-1], np.diff(s, axis=0))
    roll = [s[0]]
    for _ in range(fit_steps):
        roll.append(roll[-1] + model.predict(roll[-1][None])[0])
    roll = np.array(roll)
    return {"r2": float(model.score(s[:-1], np.diff(s, axis=0))),
            "rollout_rel_error": float(np.linalg.norm(roll - s) / np.linalg.norm(s)), "rollout": roll}


def main() -> None:
    from interp.analyzers.fourier_competition.summary import auroc
    from interp.maths.manifolds import surviving
    from interp.report.plots import pyplot, save

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dims", type=int, nargs="+", default=[4, 16, 64, 256])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--fit-steps", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = [RunSpec(d, s, args.steps, min(args.fit_steps, args.steps)) for d in args.dims for s in args.seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(train_one, specs))

    rows, by_width = [], []
    for run in runs:
        alive = surviving(run["signal"][-1])
        dyn = fit_dynamics(run["signal"], run["spec"].fit_steps)
        run.update(alive=alive, dyn=dyn)
        rows.append({"d": run["spec"].d, "seed": run["spec"].seed, "test_acc": round(run["test_acc"], 4),
                     "circles": int(alive.sum()), "survivors": " ".join(str(k + 1) for k in np.flatnonzero(alive)),
                     "dynamics_r2": round(dyn["r2"], 3), "rollout_rel_error": round(dyn["rollout_rel_error"], 3)})
    for d in args.dims:
        rs = [r for r in runs if r["spec"].d == d]
        alive = np.concatenate([r["alive"] for r in rs])
        by_width.append({"d": d, "seeds": len(rs), "circles_mean": round(float(np.mean([a.sum() for a in
                                                                                        (r["alive"] for r in rs)])), 2),
                         "test_acc_mean": round(float(np.mean([r["test_acc"] for r in rs])), 3),
                         "auroc_initial_signal": round(auroc(np.concatenate([r["signal"][0] for r in rs]), alive), 3),
                         "auroc_initial_grad": round(auroc(np.concatenate([r["grad0"] for r in rs]), alive), 3),
                         "dynamics_r2_mean": round(float(np.mean([r["dyn"]["r2"] for r in rs])), 3),
                         # median: one unstable fitted A makes a rollout diverge, and a mean would be that one run
                         "rollout_rel_error_median": round(float(np.median([r["dyn"]["rollout_rel_error"]
                                                                            for r in rs])), 3)})
    for name, table in (("runs.csv", rows), ("by_width.csv", by_width)):
        with open(args.out / name, "w", newline="") as f:
            w = csv.DictWriter(f, list(table[0]))
            w.writeheader()
            w.writerows(table)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["d"] for r in rows], [r["circles"] for r in rows], "o", alpha=0.4, label="one seed")
    ax.plot([b["d"] for b in by_width], [b["circles_mean"] for b in by_width], "-o", label="mean")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("embedding dimension d")
    ax.set_ylabel("surviving circles")
    ax.set_title(f"p = {P}: circles surviving {args.steps} steps")
    ax.legend(fontsize=8)
    save(fig, args.out / "circles_vs_width.png")

    fig, axes = plt.subplots(1, len(args.dims), figsize=(4.2 * len(args.dims), 3.4), squeeze=False)
    for ax, d in zip(axes[0], args.dims):
        run = next(r for r in runs if r["spec"].d == d)
        x = np.arange(len(run["signal"]))
        for k in range(run["signal"].shape[1]):
            live = run["alive"][k]
            (line,) = ax.plot(x, run["signal"][:, k], color=None if live else "0.75", lw=1.6 if live else 0.6,
                              label=f"k={k + 1}" if live else None, zorder=3 if live else 1)
            if live:
                ax.plot(np.arange(len(run["dyn"]["rollout"])), run["dyn"]["rollout"][:, k], "--",
                        color=line.get_color(), lw=1)
        ax.set_title(f"d = {d}, seed {run['spec'].seed} (dashed: fitted dynamics)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("signal s_k")
        if run["alive"].any():
            ax.legend(fontsize=7)
    save(fig, args.out / "trajectories.png")
    for b in by_width:
        print(b)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
