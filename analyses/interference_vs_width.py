"""Gradient interference on the rare task, by width (Huang et al., arXiv 2605.29548, section 4), with interp's
public API only.

The paper reports cos(g_nt, g_rare) -- the gradient of a mixed batch's non-task tokens against the rare task's
reference gradient, on the rare task's neurons -- at 0.10 +- 0.09 in a 20M model and 0 +- 0.02 in a 1B one. This
script measures it, and the rare-task interference ratio (|interference[other task, rare]| /
|interference[rare, rare]|), in two modes.

**Bundle** (default): the bundled competition series (``narrow``: d_mlp 8, ``wide``: d_mlp 256, both d_model 64)
and, with ``--scaled``, a wide run with d_model 128 trained here with the bundled recipe. Writes
``bundled_table.csv`` / ``.md`` (mean over seeds of |value|, plain mean over the log-spaced checkpoints and
step-weighted), ``cos_nt_vs_step.png``, ``interference_ratio_vs_step.png`` and each run's last interference matrix.

**Sweep** (``--sweep DIR``): d_model 64-512 x (rare frequency, d_mlp) in {(0.05, 8), (0.05, 256), (0.02, 256)},
seeds 0-2, the bundled recipe (``make_bundled.competition_config``) cut to 800 steps with checkpoints at 0, 3, 10,
30, 100, 200, 400, 800 -- 36 runs trained one after another on one thread into DIR (about 31 CPU-minutes; d_model
512 is 0.17 s a step), then ``grad-interference`` on every checkpoint (16 mixed batches, no first-order check;
about 9 CPU-minutes; its results go to DIR/../analysis). Writes ``sweep_units.csv`` (one row per run, seed, step:
signed split cosines, their spread over batches, the ratio, each task's gradient norm, top-K neuron overlap,
accuracies), ``table.csv`` / ``table.md`` (per cell, mean +- std over seeds: the early transient, steps 3-30, and
the late window, steps >= 100, with the noise floor of the batch mean and the effective dimension of the neurons'
inputs and of the unembedding), ``sweep_vs_dmodel.png``, ``sweep_time_course.png`` and ``sweep_mechanism.png``.

    python analyses/interference_vs_width.py --out analyses/results/interference            # bundle, ~2 min
    python analyses/interference_vs_width.py --out analyses/results/interference --scaled   # + ~8 min training
    python analyses/interference_vs_width.py --out analyses/results/interference --sweep /tmp/isweep/series
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

# The sweep (--sweep DIR): d_model x (rare frequency, d_mlp) cells, 3 seeds each, the bundled recipe cut to
# SWEEP_STEPS steps (CPU budget: ~45 CPU-minutes of training on one thread; d_model 512 costs ~0.18 s a step).
SWEEP_D_MODEL = (64, 128, 256, 512)
SWEEP_CELLS = ((0.05, 8), (0.05, 256), (0.02, 256))     # (rare frequency, d_mlp); d_mlp 8 at 0.02 left out
SWEEP_STEPS = 800
SWEEP_CHECKPOINTS = (0, 3, 10, 30, 100, 200, 400, 800)


def sweep_run_name(d_model: int, d_mlp: int, freq: float) -> str:
    return f"dm{d_model}-mlp{d_mlp}-f{freq:g}"


def sweep_configs() -> list:
    """Every (cell, d_model, seed) config, seed-major so a cut-short sweep still has whole seeds."""
    configs = []
    for seed in SEEDS:
        for freq, d_mlp in SWEEP_CELLS:
            for d_model in SWEEP_D_MODEL:
                run = sweep_run_name(d_model, d_mlp, freq)
                c = competition_config(run, d_mlp, seed, n_steps=SWEEP_STEPS, rare_frequency=freq)
                configs.append(replace(c, model=competition_model(d_mlp, d_model), checkpoint_steps=SWEEP_CHECKPOINTS,
                                       labels={**c.labels, "d_model": d_model, "role": run}))
    return configs


def train_sweep(out: Path) -> None:
    """Train the sweep's missing (run, seed)s one after another on one thread (a finished one has its last
    checkpoint in the manifest), so the sweep resumes where it stopped."""
    import time

    import torch

    from interp import train
    from interp.checkpoints.manifest import load_manifest

    torch.set_num_threads(1)
    for c in sweep_configs():
        manifest = out / "manifest.yaml"
        done = manifest.exists() and any(
            r.name == c.run and any(k.seed == c.seed and k.step == SWEEP_STEPS for k in r.checkpoints)
            for r in load_manifest(manifest).manifest.runs)
        if done:
            continue
        t0, cpu0 = time.time(), time.process_time()
        entries = train(c, out, progress=False)
        acc = {k: v for k, v in entries[-1].metrics.items() if k.endswith("accuracy")}
        print(f"{c.run} seed {c.seed}: {acc} ({time.time() - t0:.0f} s wall, {time.process_time() - cpu0:.0f} s CPU)",
              flush=True)
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
    from interp.analyzers.grad_interference.summary import step_weighted_mean

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


UNIT_COLUMNS = ("run", "d_model", "d_mlp", "rare_frequency", "seed", "step", "rare_accuracy", "common_accuracy",
                "cos_nt", "cos_nt_sem", "cos_nt_batch_std", "cos_t", "cos_g", "cos_nt_all_params", "ratio",
                "cos_common_rare_all_params",
                "grad_norm_rare", "grad_norm_common", "grad_norm_background", "neuron_cos_common_rare",
                "neuron_cos_background_rare", "top_k_overlap", "random_cos_std")


def measure_sweep(series_dir: Path, out: Path, n_batches: int) -> list[dict]:
    """One row per (run, seed, step) of the sweep: the analyzer's split cosines (signed), their spread over batches,
    the interference ratio, each task's gradient norm, the population cosines of common / background vs the rare
    task on the rare task's neurons, how many of the rare task's top-K neurons are also the common task's, the
    checkpoint's accuracies, and the random-direction baseline 1/sqrt(D) (D = the rare neurons' parameter count)."""

    import interp
    from interp.results import load_results

    series = interp.load_series(series_dir)
    runs = tuple(sweep_run_name(dm, mlp, f) for f, mlp in SWEEP_CELLS for dm in SWEEP_D_MODEL)
    runs = tuple(r for r in runs if r in {x.name for x in series.manifest.runs})
    settings = {"grad-interference": {"n_batches": n_batches, "check_first_order": False}}
    interp.analyze(series, ["grad-interference"], settings,
                   interp.RunOptions(out_dir=out, runs=runs, progress=True, device="cpu"))
    entries = {r.name: r for r in series.manifest.runs}
    rows = []
    for res in load_results(out, "grad-interference"):
        run = entries[res.run]
        metrics = next(c.metrics for c in run.checkpoints if c.seed == res.seed and c.step == res.step)
        rows.append(_unit_row(res, run, metrics))
    return sorted(rows, key=lambda r: (r["rare_frequency"], r["d_mlp"], r["d_model"], r["seed"], r["step"]))


def _unit_row(res, run, metrics: dict) -> dict:
    import numpy as np

    s, a = res.scalars, res.arrays
    names, split = list(s["tasks"]), list(s["split_tasks"])
    rare, common = names.index("rare"), names.index("common")
    r = split.index("rare")
    cos_nt = a["cos_nt"][r]                                                           # [batch]
    k = a["task_neurons"].shape[1]
    return dict(run=run.name, d_model=run.model["d_model"], d_mlp=run.model["d_mlp"],
                rare_frequency=run.labels["rare_frequency"], seed=res.seed, step=res.step,
                rare_accuracy=metrics["rare/accuracy"], common_accuracy=metrics["common/accuracy"],
                cos_nt=float(cos_nt.mean()), cos_nt_sem=float(cos_nt.std(ddof=1) / np.sqrt(len(cos_nt))),
                cos_nt_batch_std=float(cos_nt.std()), cos_t=float(a["cos_t"][r].mean()),
                cos_g=float(a["cos_g"][r].mean()), cos_nt_all_params=float(a["cos_nt_all"][r].mean()),
                ratio=s.get("rare_task_interference_ratio", float("nan")),
                cos_common_rare_all_params=float(a["cosine"][common, rare]),
                **{f"grad_norm_{t}": s["grad_norm"][t] for t in ("rare", "common", "background")},
                neuron_cos_common_rare=float(a["neuron_cosine"][common, rare]),
                neuron_cos_background_rare=float(a["neuron_cosine"][names.index("background"), rare]),
                top_k_overlap=len(set(a["task_neurons"][rare]) & set(a["task_neurons"][common])) / k,
                random_cos_std=float(1 / np.sqrt(k * (2 * run.model["d_model"] + 1))))


LATE = 100    # steps from here on: past the early transient where every task's gradient is the output statistics
CELL_COLUMNS = ("run", "d_model", "d_mlp", "rare_frequency", "seeds", "rare_accuracy_final", "cos_nt_early_abs",
                "cos_nt_late_signed", "cos_nt_late_abs", "cos_nt_late_noise_abs", "cos_nt_batch_std_late",
                "random_cos_std", "cos_nt_late_z", "ratio_step_weighted", "ratio_late", "norm_ratio_late",
                "cos_common_rare_all_late_abs", "grad_norm_common_late", "grad_norm_rare_late", "top_k_overlap_late",
                "neuron_cos_common_rare_late", "dim90_in", "dim90_out")


def cell_table(units: list[dict], n_batches: int, dims: dict[str, dict]) -> list[dict]:
    """Per run: mean and spread over seeds of per-seed aggregates. ``early``: steps 3-30; ``late``: steps >= LATE.
    ``cos_nt_late_noise_abs``: what |mean over n_batches batches| would be if every batch's cosine were independent
    noise of the measured spread, sqrt(2/pi) * std / sqrt(n_batches) -- the floor |cos| cannot go below.
    ``cos_nt_late_z``: the late signed mean pooled over seeds and steps over its standard error. The ratio is
    exactly |cos_all(g_common, g_rare)| * |g_common| / |g_rare| (``cos_common_rare_all_late_abs``,
    ``norm_ratio_late``). ``dims``: ``subspace_dims``' effective dimensions, per run."""
    import numpy as np

    from interp.analyzers.grad_interference.summary import step_weighted_mean

    rows = []
    for run in dict.fromkeys(u["run"] for u in units):
        mine = [u for u in units if u["run"] == run]
        seeds = sorted({u["seed"] for u in mine})
        per_seed = {s: sorted((u for u in mine if u["seed"] == s), key=lambda u: u["step"]) for s in seeds}

        def agg(fn, per_seed=per_seed, seeds=seeds):
            v = np.array([fn(per_seed[s]) for s in seeds], dtype=float)
            return (float(v.mean()), float(v.std()))

        def late(key, f=lambda x: x):
            return lambda us: np.mean([f(u[key]) for u in us if u["step"] >= LATE])

        pooled = np.array([u["cos_nt"] for u in mine if u["step"] >= LATE])
        first = mine[0]
        rows.append(dict(
            run=run, d_model=first["d_model"], d_mlp=first["d_mlp"], rare_frequency=first["rare_frequency"],
            seeds=len(seeds), rare_accuracy_final=agg(lambda us: us[-1]["rare_accuracy"]),
            cos_nt_early_abs=agg(lambda us: np.mean([abs(u["cos_nt"]) for u in us if 3 <= u["step"] <= 30])),
            cos_nt_late_signed=agg(late("cos_nt")), cos_nt_late_abs=agg(late("cos_nt", abs)),
            cos_nt_late_noise_abs=agg(late("cos_nt_batch_std", lambda x: np.sqrt(2 / np.pi) * x / np.sqrt(n_batches))),
            cos_nt_batch_std_late=agg(late("cos_nt_batch_std")), random_cos_std=(first["random_cos_std"], 0.0),
            cos_nt_late_z=(float(pooled.mean() / (pooled.std(ddof=1) / np.sqrt(len(pooled)))), 0.0),
            ratio_step_weighted=agg(lambda us: step_weighted_mean([u["step"] for u in us], [u["ratio"] for u in us])),
            ratio_late=agg(late("ratio")),
            norm_ratio_late=agg(lambda us: np.mean([u["grad_norm_common"] / u["grad_norm_rare"] for u in us
                                                    if u["step"] >= LATE])),
            cos_common_rare_all_late_abs=agg(late("cos_common_rare_all_params", abs)),
            dim90_in=(dims[run]["dim90_in"], 0.0), dim90_out=(dims[run]["dim90_out"], 0.0),
            grad_norm_common_late=agg(late("grad_norm_common")),
            grad_norm_rare_late=agg(late("grad_norm_rare")), top_k_overlap_late=agg(late("top_k_overlap")),
            neuron_cos_common_rare_late=agg(late("neuron_cos_common_rare"))))
    return rows


def write_tables(out: Path, name: str, rows: list[dict], columns: tuple[str, ...]) -> None:
    """``name``.csv (means and ``_std`` columns for (mean, std) pairs) and ``name``.md (mean ± std)."""
    def flat(r):
        out = {}
        for c in columns:
            v = r[c]
            if isinstance(v, tuple):
                out[c], out[c + "_std"] = round(v[0], 4), round(v[1], 4)
            else:
                out[c] = round(v, 4) if isinstance(v, float) else v
        return out

    flats = [flat(r) for r in rows]
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(flats[0]))
        w.writeheader()
        w.writerows(flats)

    def cell(v):
        if isinstance(v, tuple):
            return f"{v[0]:.3g}" if v[1] == 0 else f"{v[0]:.3g} ± {v[1]:.2g}"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def subspace_dims(series_dir: Path, step: int = SWEEP_STEPS, n_sequences: int = 4096) -> dict[str, dict]:
    """{run: mean over seeds of the effective dimension of the room a neuron's gradient has} at ``step``, against
    the nominal 2 d_model + 1: ``pr_in``, the participation ratio (sum lambda)^2 / sum lambda^2 of the second moment
    of the MLP's inputs (hook_resid_mid at every position of ``n_sequences`` mixed sequences; a neuron's W_in
    gradient is a weighted sum of them), ``dim90_in`` the directions holding 90% of that second moment, and
    ``pr_out`` / ``dim90_out`` the same for W_U with its mean over the vocabulary removed (a neuron's W_out gradient
    is W_U @ dlogits summed over tokens, and dlogits sums to 0 over the vocabulary: it lies in that centred column
    space, at most d_vocab - 1 = 95 dimensions whatever d_model is)."""
    import numpy as np
    import torch

    import interp
    from interp.checkpoints.loading import load_ref
    from interp.toys.tasks import MixtureSpec, MixtureStream

    def spectrum(m) -> tuple[float, int]:
        lam = torch.linalg.svdvals(m.double()).numpy() ** 2
        dim90 = int(np.searchsorted(np.cumsum(lam) / lam.sum(), 0.9) + 1)
        return float(lam.sum() ** 2 / (lam ** 2).sum()), dim90

    series = interp.load_series(series_dir)
    per_run: dict[str, list] = {}
    for ref in series.refs():
        if ref.step != step:
            continue
        model = load_ref(ref, device="cpu")
        batch = MixtureStream(MixtureSpec.from_dict(ref.mixture), n_sequences, 10_000).batch(0)
        with torch.inference_mode():
            _, cache = model.run_with_cache(torch.as_tensor(batch.tokens), names_filter="blocks.0.hook_resid_mid")
            pr_in, dim90_in = spectrum(cache["blocks.0.hook_resid_mid"].reshape(-1, model.cfg.d_model))
            w_u = model.W_U - model.W_U.mean(1, keepdim=True)                        # [d_model, vocab]
            per_run.setdefault(ref.run, []).append((pr_in, dim90_in, *spectrum(w_u.T)))
    keys = ("pr_in", "dim90_in", "pr_out", "dim90_out")
    return {run: dict(zip(keys, np.mean(v, axis=0).tolist())) for run, v in per_run.items()}


def _cell_label(freq: float, d_mlp: int) -> str:
    return f"rare freq {freq:g}, d_mlp {d_mlp}"


def draw_vs_dmodel(cells: list[dict], out: Path) -> Path:
    """|cos_nt| and signed cos_nt (late window) and the step-weighted ratio against d_model, one line per
    (frequency, d_mlp), error bars = std over seeds; dashed: the noise floor of |cos| for that cell."""
    from interp.report.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for (freq, d_mlp), colour in zip(SWEEP_CELLS, ("C0", "C1", "C2")):
        mine = sorted((c for c in cells if (c["rare_frequency"], c["d_mlp"]) == (freq, d_mlp)),
                      key=lambda c: c["d_model"])
        if not mine:
            continue
        x = [c["d_model"] for c in mine]
        for ax, key in zip(axes, ("cos_nt_late_abs", "cos_nt_late_signed", "ratio_step_weighted")):
            ax.errorbar(x, [c[key][0] for c in mine], yerr=[c[key][1] for c in mine], color=colour, marker="o",
                        capsize=3, label=_cell_label(freq, d_mlp))
        axes[0].plot(x, [c["cos_nt_late_noise_abs"][0] for c in mine], color=colour, ls="--", lw=1)
    axes[0].plot([], [], color="k", ls="--", lw=1, label="noise floor: sqrt(2/pi) std_batch / sqrt(n)")
    axes[1].axhline(0, color="k", lw=0.6)
    for ax, title in zip(axes, (f"|cos(g_nt, g_rare)|, steps >= {LATE}", f"signed cos(g_nt, g_rare), steps >= {LATE}",
                                "rare-task interference ratio, step-weighted")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(SWEEP_D_MODEL, [str(d) for d in SWEEP_D_MODEL])
        ax.set_xlabel("d_model")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("mean over batches, seeds (bars: std over 3 seeds)")
    axes[2].set_ylabel("|I[common, rare]| / |I[rare, rare]|")
    axes[0].legend(fontsize=7)
    return save(fig, out / "sweep_vs_dmodel.png")


def draw_time_course(units: list[dict], out: Path) -> Path:
    """Rows: (frequency, d_mlp) cells; columns: signed cos_nt, interference ratio, rare-task accuracy; one line per
    d_model, band = std over seeds."""
    import numpy as np

    from interp.report.plots import pyplot, save

    plt = pyplot()
    keys = (("cos_nt", "signed cos(g_nt, g_rare)"), ("ratio", "interference ratio"),
            ("rare_accuracy", "rare-task accuracy"))
    fig, axes = plt.subplots(len(SWEEP_CELLS), len(keys), figsize=(14, 3.3 * len(SWEEP_CELLS)), squeeze=False)
    for row, (freq, d_mlp) in enumerate(SWEEP_CELLS):
        for d_model, colour in zip(SWEEP_D_MODEL, ("C0", "C1", "C2", "C3")):
            mine = [u for u in units if (u["rare_frequency"], u["d_mlp"], u["d_model"]) == (freq, d_mlp, d_model)]
            steps = sorted({u["step"] for u in mine})
            if not steps:
                continue
            for col, (key, _) in enumerate(keys):
                v = np.array([[u[key] for u in mine if u["step"] == st] for st in steps])      # [step, seed]
                x = [max(st, 1) for st in steps]
                axes[row, col].plot(x, v.mean(1), color=colour, marker="o", ms=3, label=f"d_model {d_model}")
                axes[row, col].fill_between(x, v.mean(1) - v.std(1), v.mean(1) + v.std(1), color=colour, alpha=0.2)
        for col, (key, title) in enumerate(keys):
            ax = axes[row, col]
            ax.set_xscale("log")
            ax.set_title(f"{title} -- {_cell_label(freq, d_mlp)}", fontsize=9)
            if key == "cos_nt":
                ax.axhline(0, color="k", lw=0.6)
            if row == len(SWEEP_CELLS) - 1:
                ax.set_xlabel("training step (step 0 drawn at 1)")
    axes[0, 0].legend(fontsize=7)
    return save(fig, out / "sweep_time_course.png")


def draw_mechanism(cells: list[dict], units: list[dict], out: Path) -> Path:
    """What the cosine and the ratio are made of, against d_model, one line per (frequency, d_mlp): the cosine's
    spread over batches against the isotropic baseline of its nominal dimension; the effective dimension of the
    neurons' inputs and of the unembedding; the ratio's two factors; the early transient; |cos_nt| against the
    rare task's accuracy (late checkpoints of every seed)."""
    import numpy as np

    from interp.report.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.2))
    axes = axes.ravel()
    panels = (("cos_nt_batch_std_late", "cos_nt spread over batches, steps >= 100"),
              ("dim90_in", "dims holding 90% of the MLP inputs (solid) / centred W_U (dotted)"),
              ("norm_ratio_late", "|g_common| / |g_rare|, steps >= 100"),
              ("cos_common_rare_all_late_abs", "|cos(g_common, g_rare)|, all params, steps >= 100"),
              ("cos_nt_early_abs", "|cos(g_nt, g_rare)|, steps 3-30 (the transient)"))
    for (freq, d_mlp), colour in zip(SWEEP_CELLS, ("C0", "C1", "C2")):
        mine = sorted((c for c in cells if (c["rare_frequency"], c["d_mlp"]) == (freq, d_mlp)),
                      key=lambda c: c["d_model"])
        x = [c["d_model"] for c in mine]
        for ax, (key, _) in zip(axes, panels):
            ax.errorbar(x, [c[key][0] for c in mine], yerr=[c[key][1] for c in mine], color=colour, marker="o",
                        capsize=3, label=_cell_label(freq, d_mlp))
        axes[1].plot(x, [c["dim90_out"][0] for c in mine], color=colour, ls=":", marker="s")
    axes[0].plot(SWEEP_D_MODEL, [1 / np.sqrt(8 * (2 * d + 1)) for d in SWEEP_D_MODEL], "k--", lw=1,
                 label="isotropic: 1/sqrt(K (2 d_model + 1))")
    axes[1].plot(SWEEP_D_MODEL, SWEEP_D_MODEL, "k--", lw=1, label="d_model (nominal room)")
    axes[1].set_yscale("log", base=2)
    for ax, (_, title) in zip(axes, panels):
        ax.set_xscale("log", base=2)
        ax.set_xticks(SWEEP_D_MODEL, [str(d) for d in SWEEP_D_MODEL])
        ax.set_xlabel("d_model")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    late = [u for u in units if u["step"] >= LATE]
    for d_model, colour in zip(SWEEP_D_MODEL, ("C0", "C1", "C2", "C3")):
        mine = [u for u in late if u["d_model"] == d_model]
        axes[5].scatter([u["rare_accuracy"] for u in mine], [abs(u["cos_nt"]) for u in mine], s=12, color=colour,
                        label=f"d_model {d_model}")
    axes[5].set_xlabel("rare-task accuracy at the checkpoint")
    axes[5].set_title("|cos(g_nt, g_rare)| vs how far the rare task is learned (steps >= 100)", fontsize=9)
    axes[5].legend(fontsize=7)
    return save(fig, out / "sweep_mechanism.png")


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
    ap.add_argument("--sweep", type=Path, default=None, help="instead of the bundle: train (what is missing) and "
                    "measure the d_model x d_mlp x frequency sweep in this folder (checkpoints: not in the repository)")
    ap.add_argument("--train-only", action="store_true", help="with --sweep: train the missing runs and stop")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sweep is not None:
        train_sweep(args.sweep)
        if not args.train_only:
            sweep(args.sweep, args.out, args.n_batches)
        return
    bundled(args)


def sweep(series_dir: Path, out: Path, n_batches: int) -> None:
    units = measure_sweep(series_dir, series_dir.parent / "analysis", n_batches)
    with open(out / "sweep_units.csv", "w", newline="") as f:
        w = csv.DictWriter(f, UNIT_COLUMNS)
        w.writeheader()
        w.writerows({k: round(v, 6) if isinstance(v, float) else v for k, v in u.items()} for u in units)
    cells = cell_table(units, n_batches, subspace_dims(series_dir))
    write_tables(out, "table", cells, CELL_COLUMNS)
    draw_vs_dmodel(cells, out)
    draw_time_course(units, out)
    draw_mechanism(cells, units, out)
    print((out / "table.md").read_text())


def bundled(args) -> None:
    """The bundled narrow / wide series (and, with --scaled, a d_model-128 wide run): bundled_table.csv / .md."""
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
    write_tables(args.out, "bundled_table", rows, COLUMNS)


if __name__ == "__main__":
    main()
