"""``grad-interference`` over a series: per-run tables, headline rows and figure specs (data and captions only;
``interp.report`` draws them)."""

from __future__ import annotations

import numpy as np

from interp.report import headline as H
from interp.report.figures import Heatmap, Lines, Matrix, per_run_lines
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step

KEYS = ("rare_nt_cosine_mean", "rare_nt_cosine_sem", "rare_nt_abs_cosine_mean", "rare_nt_abs_cosine_floor",
        "rare_t_cosine_mean", "rare_nt_cosine_all_params_mean", "rare_g_cosine_mean", "rare_background_cosine",
        "rare_task_interference_ratio", "rare_background_interference_ratio", "first_order_rel_error")
SEEDS = "Thin lines are single seeds, the thick line their mean; colour is the run (width)."


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Per run and step (mean and spread over seeds); headline: the signed cos(g_nt, g_rare) at the last step with
    its standard error over batches, |cos| beside the floor random directions would give, and the interference
    ratio (plain and step-weighted means over checkpoints)."""
    out = summarize_scalars(results, KEYS)
    out["figures"] = [f.to_json() for f in (cosine_figure(out["per_run"]), ratio_figure(out["per_run"]),
                                            matrix_figure(results))]
    out["headline"] = []
    for run, steps in out["per_run"].items():
        step = max(steps, key=int)
        row = steps[step]
        if "rare_nt_cosine_mean" not in row:
            continue
        sem = row.get("rare_nt_cosine_sem", {}).get("per_seed", {})
        out["headline"].append(H.seeds(
            run, f"cos(g_nt, g_rare), signed, step {step}", row["rare_nt_cosine_mean"]["per_seed"], 4,
            note="per seed ± its standard error over batches: " + ", ".join(
                f"{v:+.4f} ± {sem.get(s, float('nan')):.4f}" for s, v in row["rare_nt_cosine_mean"]["per_seed"].items()
                if v is not None)))
        if "rare_nt_abs_cosine_mean" in row:
            floor = row["rare_nt_abs_cosine_floor"]["mean"]
            out["headline"].append(H.seeds(run, f"|cos(g_nt, g_rare)|, step {step}",
                                           row["rare_nt_abs_cosine_mean"]["per_seed"], 4,
                                           note=f"noise floor (random directions, as many dimensions): {floor:.4f}"))
    per_seed = abs_curves_per_seed(out["per_run"], "rare_task_interference_ratio")
    for run, (steps, values) in abs_curve(out["per_run"], "rare_task_interference_ratio").items():
        seeds = per_seed[run]
        out["headline"] += [
            H.seeds(run, "rare-task interference ratio, mean over checkpoints",
                    {s: float(np.mean(v)) for s, (_, v) in seeds.items()}, 4, float(np.mean(values))),
            H.seeds(run, "rare-task interference ratio, step-weighted mean",
                    {s: step_weighted_mean(x, v) for s, (x, v) in seeds.items()}, 4,
                    step_weighted_mean(steps, values))]
    return out


def cosine_figure(per_run: dict) -> Lines:
    lines = per_run_lines(per_run, "rare_nt_cosine_mean")
    return Lines("rare_nt_cosine", "cos(g_nt, g_rare): how the non-task tokens' gradient aligns with the rare task's",
                 y_label="cosine (mean over batches)", lines=lines, zero_line=True,
                 skip_reason="" if lines else "no run has a rare task and background sequences to split batches",
                 caption=f"Cosine between the gradient of a mixed batch's non-task tokens and the rare task's own "
                         f"gradient, on the rare task's task neurons' parameters (the top quarter of the first "
                         f"layer's neurons by the norm of its gradient), mean over the batches the trainer drew just "
                         f"before the checkpoint (for a series interp did not train: background text with the rare "
                         f"task's items at its frequency). {SEEDS} Positive: ordinary "
                         f"training pushes the rare task's neurons the way the rare task wants; negative: against "
                         f"it; near 0: orthogonal. Huang et al. (arXiv 2605.29548) report 0.10 ± 0.09 at 20M "
                         f"parameters and 0 ± 0.02 at 1B: interference on the rare task fades with scale.")


def ratio_figure(per_run: dict) -> Lines:
    lines = per_run_lines(per_run, "rare_task_interference_ratio")
    return Lines("rare_task_interference_ratio", "Interference on the rare task from another task's update, "
                 "per unit of the rare task's own", y_label="|interference[j, rare]| / |interference[rare, rare]|",
                 lines=lines, skip_reason="" if lines else "no run has a rare task and another task",
                 caption=f"The largest first-order change of the rare task's loss caused by one SGD step on another "
                         f"task, relative to the change caused by a step on the rare task itself. {SEEDS} Lower "
                         f"means the rare task's learning is less disturbed by the rest of the mixture; the paper "
                         f"(Huang et al., arXiv 2605.29548) predicts it to shrink with width.")


def matrix_figure(results: list[Result]) -> Heatmap:
    panels, n = [], 0
    for run, steps in by_run_step(results).items():
        last = steps[max(steps)]
        n = max(n, len(last))
        tasks = list(last[0].tasks)
        panels.append(Matrix(f"{run}, step {max(steps)}",
                             np.mean([r.arrays["interference"] for r in last], 0).tolist(), tasks, tasks))
    return Heatmap("interference", "First-order interference between tasks at the last step: -lr <g_row, g_col>",
                   panels=panels, row_title="task updated", col_title="task whose loss changes",
                   z_title="loss change", diverging=True, fmt=".1e",
                   caption=f"Cell (j, r): the predicted change of task r's loss after one SGD step (lr from the "
                           f"options) on task j alone, mean over {n} seeds. Negative (blue): the step helps task r; "
                           f"positive (red): it hurts. The diagonal is each task's own progress. Huang et al. "
                           f"(arXiv 2605.29548, section 4) measure this first-order interference and find it on the "
                           f"rare task shrinking as models grow.")


def abs_curve(per_run: dict, key: str) -> dict[str, tuple[list[int], list[float]]]:
    """{run: (steps, mean over seeds of |value|)}: signed values of different seeds must not cancel."""
    out = {}
    for run, steps in per_run.items():
        pts = sorted((int(st), float(np.mean(np.abs(list(row[key]["per_seed"].values())))))
                     for st, row in steps.items() if key in row)
        if pts:
            out[run] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def abs_curves_per_seed(per_run: dict, key: str) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """{run: {seed: (steps, |value|)}}: the per-seed curves behind ``abs_curve``, for the spread over seeds."""
    out: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for run, steps in per_run.items():
        for st, row in sorted(steps.items(), key=lambda kv: int(kv[0])):
            for seed, v in (row[key]["per_seed"].items() if key in row else ()):
                xs, ys = out.setdefault(run, {}).setdefault(seed, ([], []))
                xs.append(int(st))
                ys.append(abs(float(v)))
    return out


def step_weighted_mean(steps, values) -> float:
    """Trapezoid average of ``values`` over training steps: log-spaced checkpoints weighted by the span they cover."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(steps) < 2 or steps[-1] == steps[0]:
        return float(values.mean())
    order = np.argsort(steps)
    steps, values = steps[order], values[order]
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(steps)) / (steps[-1] - steps[0]))
