"""``likelihood-chain`` over a series: correlations of each metric with log step (and log width), tables, headline
rows and figure specs (data and captions only; ``interp.report`` draws them).

Ours, where the paper (Schaeffer et al., arXiv 2406.04391) correlates scores with log compute across model families:
here the x is log10(training step) of one run (step 0 left out by default, ``step_zero="plus_one"`` uses
log10(step + 1) instead), points pooled over the run's seeds (each checkpoint one point), and again per seed with the
spread over seeds; across runs of one group that differ in width, x is log10(width) at each run's last step.
"""

from __future__ import annotations

import math

import numpy as np

from interp.report import headline as H
from interp.report.figures import BarGroup, Bars, Lines, per_run_lines
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step

METRICS = ("log_p_correct", "p_correct", "p_choice", "brier", "accuracy")
LABELS = {"log_p_correct": "log p(correct)", "p_correct": "p(correct)", "p_choice": "p(correct | choices)",
          "brier": "Brier score", "accuracy": "accuracy", "wrong_max": "strongest wrong choice's mass"}
SHORT = {"log_p_correct": "log p", "p_correct": "p", "p_choice": "p | choices", "brier": "Brier",
         "accuracy": "accuracy"}   # bar categories: the full labels overrun each other under five bars
PAPER = ("Schaeffer et al. (arXiv 2406.04391) find, over five model families and twelve multiple-choice benchmarks, "
         "that the correlation of a score with scale degrades along log p(correct) -> p(correct) -> p(correct) "
         "among the choices -> Brier -> accuracy, because the later metrics also depend on how probability mass "
         "moves on specific wrong choices.")
SEEDS = "Thin lines are single seeds, the thick line their mean; colour is the run."


def log_steps(steps, step_zero: str) -> np.ndarray:
    """x of the correlations with training: log10(step) (step 0 becomes NaN and is left out) or log10(step + 1)."""
    s = np.asarray(steps, dtype=np.float64)
    if step_zero == "plus_one":
        return np.log10(s + 1)
    with np.errstate(divide="ignore"):
        return np.where(s > 0, np.log10(np.where(s > 0, s, 1)), np.nan)


def pearson(x, y) -> float | None:
    """Pearson r of the finite pairs; None with fewer than 3 pairs or a constant side."""
    x, y = _finite_pairs(x, y)
    if len(x) < 3:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    # a side that is constant up to rounding has no direction to correlate
    if den <= 1e-12 * max(1.0, float(np.abs(x).max()) * float(np.abs(y).max())) * len(x):
        return None
    return float(np.clip(dx @ dy / den, -1.0, 1.0))


def spearman(x, y) -> float | None:
    """Spearman rho (ties get their average rank) of the finite pairs; None as for ``pearson``."""
    x, y = _finite_pairs(x, y)
    if len(x) < 3:
        return None
    return pearson(average_ranks(x), average_ranks(y))


def average_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (scipy's ``rankdata``, without importing scipy)."""
    ranks = np.empty(len(v))
    ranks[np.argsort(v, kind="stable")] = np.arange(1, len(v) + 1)
    _, group, counts = np.unique(v, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def correlate(per_seed: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Correlations of y with x pooled over seeds ({seed: (x, y)}) and per seed, with the per-seed spread."""
    xs = np.concatenate([x for x, _ in per_seed.values()]) if per_seed else np.zeros(0)
    ys = np.concatenate([y for _, y in per_seed.values()]) if per_seed else np.zeros(0)
    out = {"pearson": pearson(xs, ys), "spearman": spearman(xs, ys), "n_points": int(len(_finite_pairs(xs, ys)[0])),
           "per_seed": {s: {"pearson": pearson(x, y), "spearman": spearman(x, y)} for s, (x, y) in per_seed.items()}}
    for kind in ("pearson", "spearman"):
        vals = [v[kind] for v in out["per_seed"].values() if v[kind] is not None]
        out[f"{kind}_seed_mean"] = float(np.mean(vals)) if vals else None
        out[f"{kind}_seed_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
    return out


def step_correlations(results: list[Result], step_zero: str) -> dict:
    """{run: {task: {metric: correlate(...)}}} of each metric with log step."""
    out: dict[str, dict] = {}
    for run, steps in by_run_step(results).items():
        tasks = list(dict.fromkeys(t for rs in steps.values() for r in rs for t in r.scalars.get("tasks", [])))
        out[run] = {}
        for task in tasks:
            out[run][task] = {}
            for m in METRICS + ("wrong_max",):
                per_seed: dict[str, tuple[list, list]] = {}
                for st, rs in steps.items():
                    for r in rs:
                        if f"{task}/{m}" in r.scalars:
                            x, y = per_seed.setdefault(str(r.seed), ([], []))
                            x.append(st)
                            y.append(r.scalars[f"{task}/{m}"])
                out[run][task][m] = correlate({s: (log_steps(x, step_zero), np.asarray(y, dtype=float))
                                               for s, (x, y) in per_seed.items()})
    return out


def width_correlations(results: list[Result]) -> dict:
    """Per group of runs that differ in width and per task they share: each metric's correlation with log10(width)
    over (run, seed) points at each run's last step."""
    grouped = by_run_step(results)
    groups: dict[str, list[str]] = {}
    for run, steps in grouped.items():
        groups.setdefault(steps[max(steps)][0].scalars.get("group", ""), []).append(run)
    out = {}
    for group, runs in groups.items():
        last = {run: grouped[run][max(grouped[run])] for run in runs}
        widths = {run: rs[0].scalars.get("width") for run, rs in last.items()}
        runs = [r for r in runs if widths[r]]
        if len({widths[r] for r in runs}) < 2:
            continue
        tasks = [t for t in dict.fromkeys(t for r in runs for t in last[r][0].scalars["tasks"])
                 if sum(t in last[r][0].scalars["tasks"] for r in runs) >= 2]
        name = ", ".join(runs)
        out[name] = {"group": group, "widths": {r: widths[r] for r in runs},
                     "steps": {r: max(grouped[r]) for r in runs}, "tasks": {}}
        for task in tasks:
            have = [r for r in runs if task in last[r][0].scalars["tasks"]]
            out[name]["tasks"][task] = {}
            for m in METRICS:
                x = [math.log10(widths[r]) for r in have for _ in last[r]]
                y = [res.scalars[f"{task}/{m}"] for r in have for res in last[r]]
                out[name]["tasks"][task][m] = {"pearson": pearson(x, y), "spearman": spearman(x, y),
                                               "n_points": len(y), "n_widths": len({widths[r] for r in have})}
    return out


def wrong_choices(results: list[Result]) -> dict:
    """{run: {task: {seed: (choice token, share of prompts)}}} of the most frequent strongest wrong choice at each
    run's last step."""
    out: dict[str, dict] = {}
    for run, steps in by_run_step(results).items():
        for r in steps[max(steps)]:
            for i, task in enumerate(r.scalars["tasks"]):
                j = r.scalars[f"{task}/wrong_top_choice"]
                out.setdefault(run, {}).setdefault(task, {})[str(r.seed)] = {
                    "choice": j, "token": int(r.arrays["choice_tokens"][i, j]),
                    "share": r.scalars[f"{task}/wrong_top_share"]}
    return out


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Per task: the chain's metrics per run and step, their correlations with log step and width, and what the
    wrong choices are."""
    step_zero = results[0].config["step_zero"]
    keys = tuple(dict.fromkeys(f"{t}/{m}" for r in results for t in r.scalars.get("tasks", [])
                               for m in METRICS + ("wrong_max",)))
    out = summarize_scalars(results, keys)
    out["x"] = ("log10(step), step 0 left out" if step_zero == "exclude" else "log10(step + 1)")
    out["correlations"] = step_correlations(results, step_zero)
    out["width_correlations"] = width_correlations(results)
    out["wrong_choices"] = wrong_choices(results)
    out["per_sample"] = per_sample_correlations(results, step_zero)
    tasks = list(dict.fromkeys(t for r in results for t in r.scalars.get("tasks", [])))
    figures = [chain_figure(out["per_run"], task) for task in tasks]
    figures += [correlation_figure(out["correlations"], out["x"]), per_sample_figure(out), wrong_figure(out["per_run"],
                                                                                                         tasks)]
    out["figures"] = [f.to_json() for f in figures]
    out["headline"] = headline(out)
    return out


def per_sample_correlations(results: list[Result], step_zero: str) -> dict:
    """{run: {task: {metric: {median, q25, q75, n, n_prompts}}}}: each prompt's own correlation of a metric with log
    step (per seed, over the checkpoints), the distribution over prompts and seeds. Schaeffer et al. (arXiv
    2406.04391) look at per-sample scores; a task mean smooths a step of accuracy that no single prompt has. A prompt
    whose metric never changes (an accuracy always 0) has no correlation and is counted out (``n`` of
    ``n_prompts``)."""
    out: dict[str, dict] = {}
    for run, steps in by_run_step(results).items():
        seeds: dict[int, list[Result]] = {}
        for st in sorted(steps):
            for r in steps[st]:
                seeds.setdefault(r.seed, []).append(r)
        for rs in seeds.values():
            if len(rs) < 3 or "prompt_task" not in rs[0].arrays:
                continue
            if len({len(r.arrays["prompt_task"]) for r in rs}) != 1:
                continue   # the prompts changed between checkpoints: no per-prompt series
            x = log_steps([r.step for r in rs], step_zero)
            for i, task in enumerate(rs[0].scalars["tasks"]):
                rows = rs[0].arrays["prompt_task"] == i
                for m in METRICS:
                    y = np.stack([r.arrays[f"prompt_{m}"][rows] for r in rs])          # [step, prompt]
                    cell = out.setdefault(run, {}).setdefault(task, {}).setdefault(m, {"r": [], "n_prompts": 0})
                    cell["r"] += [v for v in (pearson(x, y[:, j]) for j in range(y.shape[1])) if v is not None]
                    cell["n_prompts"] += int(y.shape[1])
    for tasks in out.values():
        for per_metric in tasks.values():
            for cell in per_metric.values():
                r = np.asarray(cell.pop("r"))
                cell.update(n=int(len(r)), median=float(np.median(r)) if len(r) else None,
                            q25=float(np.percentile(r, 25)) if len(r) else None,
                            q75=float(np.percentile(r, 75)) if len(r) else None)
    return out


def per_sample_figure(out: dict) -> Bars:
    panels = []
    for run, tasks in out["per_sample"].items():
        for task, per_metric in tasks.items():
            pooled = out["correlations"].get(run, {}).get(task, {})
            panels.append(BarGroup(f"{run}: {task}", [SHORT[m] for m in METRICS], {
                "task mean (pooled)": [pooled.get(m, {}).get("pearson") for m in METRICS],
                "per prompt (median)": [per_metric[m]["median"] for m in METRICS],
                "per prompt (25th percentile)": [per_metric[m]["q25"] for m in METRICS]}, y_label="r with log step"))
    return Bars("per_sample", "Correlation with log step: of the task mean, and of each prompt", panels=panels,
                caption="For each task: the Pearson correlation of the task-mean metric with log step (pooled over "
                        "seeds), against the distribution of each prompt's own correlation over the checkpoints "
                        "(median and 25th percentile, over prompts and seeds; prompts whose metric never changes "
                        "are left out, counted in summary.json). A mean over prompts can rise smoothly while each "
                        "prompt's accuracy jumps once: the per-prompt correlations show how predictable single "
                        "samples are. " + PAPER)


def headline(out: dict) -> list[dict]:
    rows = []
    for run, tasks in out["correlations"].items():
        for task, per_metric in tasks.items():
            for m in METRICS:
                c = per_metric[m]
                if c["pearson"] is None:
                    continue
                rho = "n/a" if c["spearman"] is None else f"{c['spearman']:.2f}"
                sample = out.get("per_sample", {}).get(run, {}).get(task, {}).get(m)
                per = (f"; per prompt: median {sample['median']:.2f} (IQR {sample['q25']:.2f} to "
                       f"{sample['q75']:.2f}; {sample['n']} of {sample['n_prompts']} prompt series)"
                       if sample and sample["n"] else "")
                rows.append(H.seeds(run, f"{task}: r({LABELS[m]}, log step)",
                                    {s: v["pearson"] for s, v in c["per_seed"].items()}, 2, c["pearson"],
                                    note=f"Pearson pooled over {len(c['per_seed'])} seeds ({c['n_points']} "
                                         f"checkpoints; ± the per-seed spread); Spearman {rho}{per}"))
    for name, w in out["width_correlations"].items():
        sizes = " / ".join(f"{r} {w['widths'][r]:g}" for r in w["widths"])
        for task, per_metric in w["tasks"].items():
            for m in METRICS:
                c = per_metric[m]
                rho = "n/a" if c["spearman"] is None else f"{c['spearman']:.2f}"
                rows.append(H.single(name, f"{task}: r({LABELS[m]}, log width), last step", c["pearson"], 2,
                                     note=f"Pearson over {c['n_points']} (run, seed) points, widths {sizes}; "
                                          f"Spearman {rho}"))
    return rows


def chain_figure(per_run: dict, task: str) -> Lines:
    lines = [l for m in METRICS for l in per_run_lines(per_run, f"{task}/{m}", LABELS[m])]
    return Lines(f"chain_{_safe(task)}", f"Task {task}: the five metrics of the chain over training",
                 y_label="mean over prompts", lines=lines, y_labels={LABELS[m]: LABELS[m] for m in METRICS},
                 caption=f"Means over the task's evaluation prompts, one panel per metric, from the log-probability "
                         f"of the correct answer over the whole vocabulary to accuracy over the answer choices "
                         f"(Brier: lower is better; a uniform guess over k choices scores 1 - 1/k). {SEEDS} {PAPER}")


def correlation_figure(corr: dict, x: str) -> Bars:
    panels = []
    for run, tasks in corr.items():
        for task, per_metric in tasks.items():
            panels.append(BarGroup(f"{run}: {task}", [SHORT[m] for m in METRICS],
                                   {"Pearson": [per_metric[m]["pearson"] for m in METRICS],
                                    "Spearman": [per_metric[m]["spearman"] for m in METRICS]},
                                   y_label="correlation with log step"))
    return Bars("correlation_with_log_step", "Correlation of each metric with log step, along the chain",
                panels=panels,
                caption=f"Per run and task, the correlation of each metric with {x}, every checkpoint of every seed "
                        f"one point (per-seed values and their spread are in the headline and summary.json); "
                        f"p | choices is p(correct) renormalised over the answer choices. Brier "
                        f"falls as the model improves, so a predictable Brier has r near -1: compare |r| along the "
                        f"chain. {PAPER}")


def wrong_figure(per_run: dict, tasks: list[str]) -> Lines:
    lines = [l for t in tasks for l in per_run_lines(per_run, f"{t}/wrong_max", t)]
    return Lines("strongest_wrong_mass", "Mass on the strongest wrong choice over training, one panel per task",
                 y_label="renormalised mass of the strongest wrong choice", lines=lines,
                 caption=f"Per prompt, the largest probability any wrong choice holds after renormalising over the "
                         f"choices; mean over prompts. Accuracy counts a prompt right only when the correct "
                         f"choice beats this one. {SEEDS} {PAPER} They study how the mass on incorrect "
                         f"choices co-varies with the mass on the correct one as compute grows, and suggest that "
                         f"scaling laws for incorrect choices may be achievable.")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
