"""``universal-neurons`` over a series: per-run tables, headline rows and figure specs (data and captions only;
``interp.report`` draws them), and the join with ``neuron-stats`` (universal vs other neurons' statistics)."""

from __future__ import annotations

import numpy as np

from interp.report import headline as H
from interp.report.figures import BarGroup, Bars, Hist, Histogram, Line, Lines
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step, unit_id

PAPER = ("Gurnee et al. (arXiv 2401.12181) find 1-5% of GPT-2's neurons universal (4.2% in GPT-2 small), "
         "more in the first and last layers.")
JOIN_STATS = ("kurtosis", "skew", "act_freq", "w_in_norm", "w_out_norm", "vocab_cos_kurtosis")


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Universal fraction per run and step; figures: universal fraction per layer and excess correlation vs step,
    max-correlation histograms vs the baseline at the last step, and (joined with ``neuron-stats`` when it ran)
    universal vs other neurons' kurtosis and sparsity."""
    out = summarize_scalars(results, ("universal_fraction", "mean_excess_corr", "mean_max_corr", "mean_baseline"))
    grouped = by_run_step(results)
    figures = [fraction_figure(grouped), excess_figure(grouped), histogram_figure(grouped)]
    joined = join_neuron_stats(results, uses.get("neuron-stats", []))
    if joined:
        out["universal_vs_other"] = joined
        figures.append(join_figure(joined))
    roles = join_roles(results, uses.get("neuron-roles", []))
    if roles:
        out["roles_by_universality"] = roles
        figures.append(roles_figure(roles))
    out["figures"] = [f.to_json() for f in figures]
    out["headline"] = []
    for run, steps in grouped.items():
        step = max(steps)
        res = steps[step][0]
        # one result holds every seed of the step: the spread over seeds is in its per-seed arrays
        uni = res.arrays["universal"].reshape(len(res.scalars["seeds"]), -1)
        exc = res.arrays["excess_corr"].reshape(uni.shape)
        out["headline"].append(H.seeds(run, f"universal fraction, step {step}",
                                       dict(zip(res.scalars["seeds"], uni.mean(1).tolist())), 3))
        out["headline"].append(H.seeds(run, f"mean excess correlation, step {step}",
                                       dict(zip(res.scalars["seeds"], exc.mean(1).tolist())), 3))
        if run in joined and joined[run]["kurtosis"]["n_universal"]:
            for key, label in (("kurtosis", "median kurtosis"), ("act_freq", "median activation frequency")):
                out["headline"].append(H.text(run, f"{label}, universal vs other live neurons",
                                              f"{joined[run][key]['universal']:.3g} vs {joined[run][key]['other']:.3g}",
                                              note=f"{joined[run][key]['n_universal']} universal neurons"))
        for role, cell in roles.get(run, {}).get("all layers", {}).items():
            if cell["p_value"] is not None and (cell["universal"] or cell["other"]):
                out["headline"].append(H.text(
                    run, f"{role} neurons among universal vs other neurons",
                    f"{cell['universal_share']:.1%} vs {cell['other_share']:.1%}",
                    note=f"{cell['universal']} of {cell['n_universal']} vs {cell['other']} of {cell['n_other']}; "
                         f"Fisher's exact p = {cell['p_value']:.2g}"))
    return out


def _series(grouped: dict, value) -> list[Line]:
    """One line per run (and panel): a seed group gives one value per step, not one per seed."""
    lines = []
    for run, steps in grouped.items():
        for panel, ys in value(steps).items():
            lines.append(Line(list(steps), ys, run, panel))
    return lines


def fraction_figure(grouped: dict) -> Lines:
    def per_layer(steps: dict) -> dict[str, list[float]]:
        n_layers = len(next(iter(steps.values()))[0].scalars["universal_fraction_per_layer"])
        return {f"layer {l}" if n_layers > 1 else "": [float(np.mean([r.scalars["universal_fraction_per_layer"][l]
                                                                      for r in rs])) for rs in steps.values()]
                for l in range(n_layers)}

    lines = _series(grouped, per_layer)
    none = all(not v for l in lines for v in l.y if v is not None)
    return Lines("universal_fraction", "Fraction of universal neurons over training (excess correlation > 0.5)",
                 y_label="universal fraction", lines=lines,
                 skip_reason="no neuron is universal at any step of any run (every fraction is 0; the excess "
                             "correlation below shows how far from the threshold they are)" if none else "",
                 caption=f"The fraction of a run's MLP neurons (all its seeds) whose max correlation with the other "
                         f"seeds exceeds the rotated baseline's by more than the threshold (0.5), per layer when "
                         f"there are several. Colour is the run. {PAPER}")


def excess_figure(grouped: dict) -> Lines:
    def excess(steps: dict) -> dict[str, list[float]]:
        return {"": [float(np.mean([r.scalars["mean_excess_corr"] for r in rs])) for rs in steps.values()]}

    return Lines("excess_corr", "Mean excess correlation over the rotated baseline, over training",
                 y_label="mean excess correlation", lines=_series(grouped, excess), zero_line=True,
                 caption="For each neuron: its max correlation with any neuron of another seed, averaged over the "
                         "other seeds, minus the same against randomly rotated activations; here the mean over "
                         "neurons. 0 means seeds share no more neuron-aligned features than chance; a universal "
                         "neuron needs more than 0.5. Colour is the run. " + PAPER)


def histogram_figure(grouped: dict) -> Histogram:
    edges = np.linspace(0, 1, 41)
    panels = []
    for run, steps in grouped.items():
        last = steps[max(steps)][0]
        counts = {"max correlation with other seeds": np.histogram(np.nanmean(last.arrays["max_corr"], 1).ravel(),
                                                                   edges)[0].tolist(),
                  "rotated baseline": np.histogram(np.nanmean(last.arrays["baseline_max"], 1).ravel(),
                                                   edges)[0].tolist()}
        panels.append(Hist(f"{run}, step {max(steps)}", edges.tolist(), counts))
    return Histogram("max_corr_hist", "Max correlation across seeds against a random-rotation baseline, last step",
                     panels=panels, x_label="max correlation, mean over the other seeds", y_label="neurons",
                     caption="Per neuron (every seed), its max correlation with any neuron of another seed, averaged "
                             "over the other seeds (blue), against the same for randomly rotated activations "
                             "(grey): where the blue mass sits right of the grey, neurons align across seeds more "
                             "than chance. Universal neurons form a tail beyond the baseline by more than 0.5. "
                             + PAPER)


JOIN_PANELS = (("kurtosis", "median kurtosis (pre-activation)", "kurtosis"),
               ("skew", "median skew (pre-activation)", "skew"),
               ("act_freq", "median activation frequency", "fraction of tokens"),
               ("w_in_norm", "median input weight norm", "|w_in|"),
               ("w_out_norm", "median output weight norm", "|w_out|"))


def join_figure(joined: dict) -> Bars:
    runs = list(joined)
    panels = [BarGroup(title, runs, {"universal": [joined[r][k]["universal"] for r in runs],
                                     "other live neurons": [joined[r][k]["other"] for r in runs]}, y_label=y)
              for k, title, y in JOIN_PANELS]
    none = all(not joined[r]["kurtosis"]["n_universal"] for r in runs)
    return Bars("universal_vs_other", "Universal vs other neurons at the last step: the paper's comparison",
                panels=panels, skip_reason="no neuron is universal in any run at the last step, so there is nothing "
                                           "to set against the other neurons" if none else "",
                caption="Medians over universal neurons and over the other live neurons (dead neurons, never active "
                        "on these prompts, are left out and counted in the numbers), from neuron-stats at the same "
                        "checkpoints. Gurnee et al. (arXiv 2401.12181) find GPT-2's universal neurons heavy-tailed "
                        "(high kurtosis, positive skew), sparse (active on few tokens) and with larger weight norms "
                        "than the rest.")


def join_neuron_stats(results: list[Result], stats: list[Result]) -> dict:
    """Per run at its last step: medians of neuron-stats quantities over universal vs other *live* neurons.

    Ours: neurons never active on the prompts (``act_freq`` 0) are left out of "other" and counted as ``n_dead``;
    small models trained with weight decay kill many (a quarter of the bundled universal family's), and their
    zero activation frequency and arbitrary pre-activation moments would stand in for a comparison of features."""
    stats = {r.unit_id: r for r in stats}   # the runner hands in only those of the same checkpoints and prompts
    out = {}
    for run, steps in by_run_step(results).items():
        res = steps[max(steps)][0]
        uni, other = {k: [] for k in JOIN_STATS}, {k: [] for k in JOIN_STATS}
        n_dead = 0
        for i, seed in enumerate(res.scalars["seeds"]):
            s = stats.get(unit_id(run, max(steps), seed))
            if s is None:
                continue
            mask = res.arrays["universal"][i]
            live = s.arrays["act_freq"] > 0
            n_dead += int((~live).sum())
            for k in JOIN_STATS:
                uni[k].extend(s.arrays[k][mask].tolist())
                other[k].extend(s.arrays[k][~mask & live].tolist())
        if other["kurtosis"]:
            out[run] = {k: {"universal": float(np.median(uni[k])) if uni[k] else None,
                            "other": float(np.median(other[k])), "n_universal": len(uni[k]),
                            "n_other": len(other[k]), "n_dead": n_dead} for k in JOIN_STATS}
    return out


def join_roles(results: list[Result], roles: list[Result]) -> dict:
    """Per run at its last step: each role's share among universal and among other neurons (every seed pooled),
    over all layers and over the later half, with Fisher's exact test of the 2 x 2 table (the null: a role is as
    common among universal neurons as among the rest). Gurnee et al. (arXiv 2401.12181) find universal neurons
    over-represented among the prediction and suppression neurons of GPT-2's later layers."""
    from scipy.stats import fisher_exact

    by_id = {r.unit_id: r for r in roles}
    out = {}
    for run, steps in by_run_step(results).items():
        res = steps[max(steps)][0]
        per_seed = [by_id.get(unit_id(run, max(steps), seed)) for seed in res.scalars["seeds"]]
        if any(r is None for r in per_seed):
            continue
        uni = res.arrays["universal"]                                      # [seed, layer, neuron]
        if not uni.any():
            continue   # nothing universal: no comparison to make
        n_layers = uni.shape[1]
        roles_named = role_names(per_seed[0])
        table = {}
        later = range(n_layers // 2, n_layers)
        halves = [("all layers", range(n_layers))]
        if len(later) < n_layers:
            halves.append((f"layer {later[0]}" if len(later) == 1 else f"layers {later[0]}-{later[-1]}", later))
        for label, layers in halves:
            u = uni[:, list(layers)]
            cells = {}
            for role in roles_named:
                flag = np.stack([r.arrays[f"is_{role}"] for r in per_seed])[:, list(layers)]
                a, b = int((flag & u).sum()), int((flag & ~u).sum())
                nu, no = int(u.sum()), int((~u).sum())
                p = float(fisher_exact([[a, nu - a], [b, no - b]])[1]) if nu and no else None
                cells[role] = {"universal": a, "other": b, "n_universal": nu, "n_other": no,
                               "universal_share": a / nu if nu else 0.0, "other_share": b / no if no else 0.0,
                               "p_value": p}
            table[label] = cells
        out[run] = table
    return out


def role_names(result: Result) -> list[str]:
    """The roles a neuron-roles result flags, in its own order (its per-layer ``counts``): read from the result, so
    that one analyzer does not import another."""
    return list(result.scalars["counts"])


def roles_figure(roles: dict) -> Bars:
    panels = [BarGroup(f"{run}, {label}", list(cells),
                       {"universal": [100 * c["universal_share"] for c in cells.values()],
                        "other neurons": [100 * c["other_share"] for c in cells.values()]}, y_label="% of neurons")
              for run, table in roles.items() for label, cells in table.items()]
    return Bars("roles_by_universality", "Neuron roles among universal and other neurons, last step", panels=panels,
                caption="The share of universal neurons (every seed) with each role from neuron-roles (read from the "
                        "weights: prediction, suppression, partition, entropy, attention deactivation), against the "
                        "share among the other neurons, over all layers and over the later half. The summary gives "
                        "Fisher's exact p for each. Gurnee et al. (arXiv 2401.12181) find universal neurons over-"
                        "represented among GPT-2's prediction and suppression neurons in later layers.")
