"""``incidental-polysemanticity`` over a series: per-run tables, headline rows and figure specs (data and captions
only; ``interp.report`` draws them)."""

from __future__ import annotations

import numpy as np

from interp.report import headline as H
from interp.report.figures import Hist, Histogram, Line, Lines, per_run_lines
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step

KEYS = ("n_polysemantic", "fraction_polysemantic", "mean_features_per_neuron", "neurons_per_feature", "baseline",
        "baseline_fraction")
PAPER = ("Lecomte et al. (arXiv 2312.03096) find that a toy autoencoder with L1 on its weights, given m >= n neurons "
         "for n one-hot features, still ends with about n²/(4m) polysemantic neurons: features that started on "
         "the same neuron by chance and have opposite signs stay together.")
SEEDS = "Thin lines are single seeds, the thick line their mean; colour is the run."
RULE = ("A neuron carries a task-token feature when the token's direct input weight to it (centred embedding row "
        "through W_in) is within 80% of that token's strongest neuron (the paper's band from 0.8 to 1.2 on a relative "
        "scale).")


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Per run and step (mean and spread over seeds); figures: features per neuron and polysemantic neurons (with
    the baseline) over steps, and the distribution of features per neuron at the first and last step."""
    out = summarize_scalars(results, KEYS)
    grouped = by_run_step(results)
    out["baseline"] = {run: {"n_features": steps[max(steps)][0].scalars["n_features"],
                             "n_neurons": steps[max(steps)][0].scalars["n_neurons"],
                             "n2_over_4m": steps[max(steps)][0].scalars["baseline"],
                             "applies": steps[max(steps)][0].scalars["baseline_applies"]}
                       for run, steps in grouped.items()}
    figures = [features_figure(out["per_run"]), count_figure(out["per_run"], out["baseline"]),
               histogram_figure(grouped)]
    out["figures"] = [f.to_json() for f in figures]
    out["headline"] = []
    for run, d in out["per_run"].items():
        step = max(d, key=int)
        last, b = d[step], out["baseline"][run]
        note = (f"n²/(4m) = {b['n2_over_4m']:.2f} for n = {b['n_features']} features, m = {b['n_neurons']} neurons"
                + ("" if b["applies"] else "; m < n: polysemanticity is necessary here, the baseline does not apply"))
        out["headline"] += [
            H.seeds(run, f"polysemantic neurons, step {step}", last["n_polysemantic"]["per_seed"], 1,
                    last["n_polysemantic"]["mean"], note),
            H.seeds(run, f"fraction of neurons polysemantic, step {step}", last["fraction_polysemantic"]["per_seed"],
                    3, last["fraction_polysemantic"]["mean"],
                    f"baseline n²/(4m²) = {last['baseline_fraction']['mean']:.3f}" if b["applies"]
                    else "no baseline: m < n"),
            H.seeds(run, f"neurons per feature, step {step}", last["neurons_per_feature"]["per_seed"], 2,
                    last["neurons_per_feature"]["mean"], "1 when every feature sits on one neuron (the toy's end)")]
    return out


def features_figure(per_run: dict) -> Lines:
    return Lines("features_per_neuron", "Task features carried per MLP neuron over training, by width",
                 y_label="mean features per neuron", lines=per_run_lines(per_run, "mean_features_per_neuron"),
                 caption=f"Mean over neurons of the number of task-token features each carries. {RULE} {SEEDS} "
                         f"A narrow model must pack its tokens into few neurons; a wide one can give each its own, "
                         f"and the toy model predicts only chance collisions then. {PAPER}")


def count_figure(per_run: dict, base: dict) -> Lines:
    """One panel per run: measured polysemantic neurons (seeds and mean) and the flat n²/(4m) baseline."""
    lines, notes = [], []
    for run, steps in sorted(per_run.items()):
        b = base[run]
        panel = f"{run} (n {b['n_features']}, m {b['n_neurons']})"
        lines += [Line(l.x, l.y, l.group, panel, seed=l.seed, n_seeds=l.n_seeds)
                  for l in per_run_lines({run: steps}, "n_polysemantic")]
        if not b["applies"]:   # drawn, it would flatten the panel: n²/(4m) > m here
            notes.append(f"{run}: the baseline n²/(4m) = {b['n2_over_4m']:.1f} is not drawn; it exceeds the "
                         f"{b['n_neurons']} neurons (m < n: polysemanticity is necessary, not incidental)")
            continue
        xs = sorted(int(s) for s in steps)
        lines.append(Line(xs, [b["n2_over_4m"]] * len(xs), "n²/(4m) baseline", panel, label="toy-model prediction"))
    return Lines("polysemantic_vs_baseline", "Polysemantic neurons over training against the toy model's n²/(4m)",
                 y_label="polysemantic neurons", lines=lines, group_title="run or baseline", notes=notes,
                 caption=f"Neurons carrying more than one task-token feature, one panel per run, against "
                         f"n²/(4m), the toy model's expected count for the run's n features and m neurons. {RULE} "
                         f"{SEEDS} A count far above the baseline means features are spread over many neurons "
                         f"(no sparsity pressure has put each on one), not incidental collisions; with m < n the "
                         f"baseline exceeds m and does not apply. {PAPER}")


def histogram_figure(grouped: dict) -> Histogram:
    """Per run: the distribution of features per neuron at the first and last step, mean over seeds."""
    panels = []
    for run, steps in sorted(grouped.items()):
        counts = {}
        for which, step in (("first step", min(steps)), ("last step", max(steps))):
            hists = [np.asarray(r.scalars["features_per_neuron_hist"], dtype=float) for r in steps[step]]
            width = max(len(h) for h in hists)
            mean = np.mean([np.pad(h, (0, width - len(h))) for h in hists], 0)
            last = int(np.flatnonzero(mean)[-1]) + 1 if mean.any() else 1
            counts[which] = mean[:last].round(3).tolist()
        width = max(len(c) for c in counts.values())
        counts = {k: v + [0.0] * (width - len(v)) for k, v in counts.items()}
        panels.append(Hist(f"{run} (steps {min(steps)} and {max(steps)})", [k - 0.5 for k in range(width + 1)],
                           counts))
    n = max((len(steps[max(steps)]) for steps in grouped.values()), default=0)
    return Histogram("features_per_neuron_hist", "How many task features each neuron carries: first and last step",
                     panels=panels, x_label="features carried", y_label="neurons (mean over seeds)",
                     caption=f"Number of neurons carrying 0, 1, 2, ... task-token features, mean over {n} seeds, at "
                             f"the first and the last checkpoint of each run. {RULE} Neurons at 0 carry no feature "
                             f"(free capacity); those at 2 or more are polysemantic. {PAPER}")
