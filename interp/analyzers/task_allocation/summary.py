"""``task-allocation`` over a series: per-run tables, headline rows and figure specs (data and captions only;
``interp.report`` draws them)."""

from __future__ import annotations

import numpy as np

from interp.report import headline as H
from interp.report.figures import Heatmap, Line, Lines, Matrix, per_run_lines
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step

KEYS = ("rare_task_accuracy", "common_task_accuracy", "rare_task_neuron_share", "common_task_neuron_share",
        "rare_common_overlap", "rare_common_overlap_null", "rare_common_overlap_excess", "rare_common_overlap_90",
        "rare_common_overlap_90_null", "rare_common_cosine", "rare_core_in_common_core")
PAPER = ("Huang et al. (arXiv 2605.29548) find that at a fixed rare-task frequency small models fail the rare "
         "task while large ones learn it, and that a rare task's neurons overlap more with a common task's in "
         "smaller models.")
SEEDS = "Thin lines are single seeds, the thick line their mean; colour is the run (width)."


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Per run and step (mean and spread over seeds); figures: accuracy and neuron share per task vs step, overlap
    vs step, and the last step's overlap and ablation matrices with every run side by side."""
    out = summarize_scalars(results, KEYS)
    grouped = by_run_step(results)
    out["figures"] = [f.to_json() for f in (accuracy_figure(out["per_run"]), share_figure(grouped),
                                            overlap_figure(out["per_run"]), *matrix_figures(grouped))]
    out["headline"] = []
    for run, d in out["per_run"].items():
        step = max(d, key=int)
        last = d[step]
        if "rare_task_accuracy" not in last:
            continue
        for key, label in (("rare_task_accuracy", "rare-task accuracy"),
                           ("rare_task_neuron_share", "rare-task neuron share (90% of attribution)")):
            out["headline"].append(H.seeds(run, f"{label}, step {step}", last[key]["per_seed"], 2, last[key]["mean"]))
        if "rare_common_overlap_excess" in last:
            null = last["rare_common_overlap_null"]["mean"]
            out["headline"].append(H.seeds(
                run, f"rare-common core overlap above chance (Jaccard - E[Jaccard]), step {step}",
                last["rare_common_overlap_excess"]["per_seed"], 2, last["rare_common_overlap_excess"]["mean"],
                note=f"observed {last['rare_common_overlap']['mean']:.2f}, random sets of the same sizes "
                     f"{null:.2f} (hypergeometric)"))
    return out


def accuracy_figure(per_run: dict) -> Lines:
    lines = per_run_lines(per_run, "rare_task_accuracy", "rare task") + \
        per_run_lines(per_run, "common_task_accuracy", "common task")
    return Lines("task_accuracy", "Accuracy of the rare and the common task over training, by width",
                 y_label="answer accuracy", lines=lines,
                 skip_reason="" if lines else "no run has two tasks of different frequency (no rare task)",
                 caption=f"Accuracy on each task's evaluated prompts (its held-out split; every item of a task "
                         f"file without splits): the share whose every answer token is the model's greedy "
                         f"prediction. {SEEDS} Read across the panels: a run that keeps the common task but not the "
                         f"rare one has run out of capacity for it. {PAPER}")


def share_figure(grouped: dict) -> Lines:
    lines = []
    for run, steps in sorted(grouped.items()):
        for task in steps[max(steps)][0].scalars["tasks"]:
            per_seed: dict[int, tuple[list, list]] = {}
            for st, rs in sorted(steps.items()):
                for r in rs:
                    xs, ys = per_seed.setdefault(r.seed, ([], []))
                    xs.append(st)
                    ys.append(r.scalars["neuron_share"][task])
            lines += [Line(x, y, run, task, seed=s) for s, (x, y) in sorted(per_seed.items())]
            lines.append(Line(sorted(steps), [float(np.mean([r.scalars["neuron_share"][task] for r in steps[st]]))
                                              for st in sorted(steps)], run, task, n_seeds=len(per_seed)))
    return Lines("neuron_share", "Share of MLP neurons holding 90% of each task's attribution (one panel per task)",
                 y_label="share of MLP neurons", lines=lines,
                 caption=f"Each panel is one task. A task's neuron set is the fewest top-attributed neurons that "
                         f"hold 90% of its attribution; its share is that set's size over all MLP neurons. {SEEDS} "
                         f"A share near 1 means the task leans on almost every neuron: in a narrow model the rare "
                         f"task then has to fit into neurons the common task also needs. {PAPER}")


def overlap_figure(per_run: dict) -> Lines:
    lines = (per_run_lines(per_run, "rare_common_overlap", "observed Jaccard")
             + per_run_lines(per_run, "rare_common_overlap_excess", "above chance (observed - expected)"))
    return Lines("rare_common_overlap", "Overlap of the rare and the common task's core neurons over training, and "
                 "how much of it chance explains", y_label="Jaccard index of the 70% core sets", lines=lines,
                 zero_line=True, skip_reason="" if lines else "no run has a rare and a common task",
                 caption=f"Left: the Jaccard index of the two tasks' core neuron sets (the top neurons holding 70% of "
                         f"each task's attribution): 0 means disjoint neurons, 1 the same neurons. Right: the same "
                         f"minus its exact expectation for random sets of the same sizes (hypergeometric): two "
                         f"random sets of 5 and 6 of 8 neurons already overlap by 0.53 on average, so only the excess "
                         f"measures sharing. {SEEDS} An excess above 0 in the narrow run means its rare task shares "
                         f"(and so competes for) the common task's neurons beyond what set size explains. {PAPER}")


def matrix_figures(grouped: dict) -> tuple[Heatmap, Heatmap]:
    overlap, damage = [], []
    for run, steps in sorted(grouped.items()):
        last, step = steps[max(steps)], max(steps)
        tasks = list(last[0].scalars["tasks"])
        overlap.append(Matrix(f"{run}, step {step}", np.mean([r.arrays["core_jaccard"] for r in last], 0).tolist(),
                              tasks, tasks))
        damage.append(Matrix(f"{run}, step {step}", np.mean([r.arrays["ablation_damage"] for r in last], 0).tolist(),
                             tasks, tasks))
    n = max((len(steps[max(steps)]) for steps in grouped.values()), default=0)
    return (Heatmap("core_overlap", "Core neuron-set overlap between tasks at the last step, every run side by side",
                    panels=overlap, row_title="task", col_title="task", z_title="Jaccard", zmin=0, zmax=1,
                    caption=f"Jaccard index of every pair of tasks' core sets (70% of attribution), mean over "
                            f"{n} seeds; the diagonal is 1. Off-diagonal cells near 1 mean two tasks run through "
                            f"the same neurons. {PAPER}"),
            Heatmap("ablation_damage", "Loss increase of each task when another task's neurons are ablated",
                    panels=damage, row_title="neurons ablated (task)", col_title="loss measured (task)",
                    z_title="loss increase", diverging=True,
                    caption=f"Row: the task whose 90% neuron set is mean-ablated; column: the task whose loss is "
                            f"measured; cell: the loss increase, mean over {n} seeds, on one colour scale for all "
                            f"runs. A strong diagonal confirms the allocation; large off-diagonal cells mean ablating "
                            f"one task's neurons also breaks another (shared neurons). {PAPER}"))
