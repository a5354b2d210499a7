"""``universal-lineage`` over runs: when universal neurons lock in (per layer), the universal fraction over
training with its bootstrap interval, a few neurons' trajectories, whether the seeds agree on when, and (joined with
``neuron-roles``) whether a neuron's final role shows before it becomes universal."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.analyzers.universal_lineage.lineage import settled_index
from interp.report import headline as H
from interp.report.figures import BarGroup, Bars, Line, Lines
from interp.results import Result, unit_id

EXAMPLES = 6   # neurons whose trajectories are drawn per run: spread over lock-in steps


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    out: dict[str, Any] = {"per_run": {}, "headline": []}
    roles = uses.get("neuron-roles", [])
    for r in sorted(results, key=lambda r: r.run):
        out["per_run"][r.run] = row = run_row(r)
        joined = role_lineage(r, roles)
        if joined:
            row["roles"] = joined
        out["headline"] += headline(r.run, row)
    # a run with no universal neuron at any step has nothing to draw: left out of the figures, named in a note
    drawn = [r for r in results if r.arrays["universal"].any()]
    none = sorted(r.run for r in results if not r.arrays["universal"].any())
    figures = [lock_in_figure(drawn), fraction_figure(drawn), trajectories_figure(drawn)]
    for f in figures:
        if none:
            f.notes.append(f"no neuron is universal at any step of {', '.join(none)}: not drawn")
        if not drawn:
            f.skip_reason = "no neuron is universal at any step of any run"
    out["figures"] = [f.to_json() for f in figures]
    return out


def run_row(r: Result) -> dict[str, Any]:
    """The run's numbers: steps, universal count, lock-in and identity counts per layer and step, their medians
    (as steps), the order of the two, and the agreement between seeds."""
    steps = r.steps
    lock = r.arrays["lock_in_index"]
    uni = r.arrays["universal"][-1]
    settled = lock[uni & (lock >= 0)]
    ident = r.arrays["identity_index"][uni & (r.arrays["identity_index"] >= 0)]
    s = r.scalars
    return {"steps": steps, "seeds": s["seeds"], "n_universal": s["n_universal"],
            "lock_in_counts": s["lock_in_counts"], "identity_counts": s["identity_counts"],
            "median_lock_in_step": _median_step(settled, steps), "median_identity_step": _median_step(ident, steps),
            "order": s["order"], "mutual_pairs": s["mutual_pairs"], "same_step_share": s["same_step_share"],
            "within_one_share": s["within_one_share"], "median_gap_in_steps": s["median_gap"],
            "universal_fraction": r.arrays["universal_fraction"].mean(1).tolist(),
            "max_corr_gap": s["max_corr_gap"]}


def _median_step(index: np.ndarray, steps: list[int]) -> int | None:
    """The step at the (lower) median of step indices, or None when there are none."""
    return int(steps[int(np.sort(index)[(len(index) - 1) // 2])]) if len(index) else None


def headline(run: str, row: dict) -> list[dict]:
    rows = [H.single(run, "universal neurons at the last step (all seeds)", row["n_universal"], 0)]
    if row["median_lock_in_step"] is not None:
        rows.append(H.single(run, "median lock-in step (excess with final partners stays above threshold)",
                             row["median_lock_in_step"], 0))
    if row["median_identity_step"] is not None:
        rows.append(H.single(run, "median identity step (self-correlation with the last step stays >= 0.9)",
                             row["median_identity_step"], 0))
    o = row["order"]
    total = sum(o.values())
    if total:
        rows.append(H.text(run, "identity settles before / with / after the lock-in",
                           f"{o['identity_first']} / {o['same_step']} / {o['universal_first']}",
                           note=f"of {total} universal neurons"))
    if row["mutual_pairs"]:
        rows.append(H.single(run, "mutual partners locking in at the same step (share)", row["same_step_share"], 2,
                             note=f"{row['mutual_pairs']} pairs; within one step: {row['within_one_share']:.2f}"))
    if "roles" in row:
        j = row["roles"]
        rows.append(H.text(run, "final role shown before / with / after the lock-in",
                           f"{j['role_first']} / {j['same_step']} / {j['universal_first']}",
                           note=f"of {j['with_role']} universal neurons with a role at the last step"))
    return rows


def role_lineage(r: Result, roles: list[Result]) -> dict[str, Any]:
    """For universal neurons with a role at the last step (``neuron-roles``, first role in its order): the step from
    which they hold that role for good against their lock-in step. Empty when roles are missing at any step."""
    by_id = {x.unit_id: x for x in roles}
    steps, seeds = r.steps, r.scalars["seeds"]
    grid = [[by_id.get(unit_id(r.run, st, sd)) for st in steps] for sd in seeds]
    if any(x is None for row in grid for x in row):
        return {}
    names = list(grid[0][0].scalars["counts"])     # the roles neuron-roles flags, in its order
    lock, uni = r.arrays["lock_in_index"], r.arrays["universal"][-1]
    counts = {"role_first": 0, "same_step": 0, "universal_first": 0, "with_role": 0}
    per_role: dict[str, int] = {}
    for a, row in enumerate(grid):
        flags = {role: np.stack([x.arrays[f"is_{role}"] for x in row]) for role in names}   # [step, layer, neuron]
        taken = np.zeros(uni[a].shape, dtype=bool)
        for role in names:
            mine = flags[role][-1] & uni[a] & ~taken & (lock[a] >= 0)
            taken |= flags[role][-1]
            if not mine.any():
                continue
            since = settled_index(flags[role])[mine]
            li = lock[a][mine]
            counts["role_first"] += int((since < li).sum())
            counts["same_step"] += int((since == li).sum())
            counts["universal_first"] += int((since > li).sum())
            counts["with_role"] += int(mine.sum())
            per_role[role] = per_role.get(role, 0) + int(mine.sum())
    counts["per_role"] = per_role
    return counts if counts["with_role"] else {}


def lock_in_figure(results: list[Result]) -> Bars:
    panels = []
    for r in sorted(results, key=lambda r: r.run):
        cats = [str(s) for s in r.steps]
        for key, what in (("lock_in_counts", "lock-in (shared with the final partners)"),
                          ("identity_counts", "identity (the neuron it ends as)")):
            counts = r.scalars[key]
            panels.append(BarGroup(f"{r.run}: {what}", cats,
                                   {f"layer {i}": [float(c) for c in row] for i, row in enumerate(counts)},
                                   y_label="universal neurons (all seeds)"))
    return Bars("lock_in", "When the last step's universal neurons settled, per layer", panels=panels,
                caption="For each neuron universal at the run's last step (every seed counted): the first step from "
                        "which its excess correlation with its last-step partners, seed against seed at the same "
                        "step, stays above the universal threshold (left), and the first step from which its "
                        "correlation with itself at the last step stays at or above identity_min, 0.9 (right). "
                        "Lock-in before identity means the seeds already shared the feature while each was still "
                        "refining its neuron. Gurnee et al. (arXiv 2401.12181) study final checkpoints only; this is "
                        "interp's extension over a series.")


def fraction_figure(results: list[Result]) -> Lines:
    lines = []
    for r in sorted(results, key=lambda r: r.run):
        frac, lo, hi = (r.arrays[k] for k in ("universal_fraction", "universal_fraction_lo", "universal_fraction_hi"))
        for layer in range(frac.shape[1]):
            lines.append(Line(r.steps, frac[:, layer].tolist(), f"layer {layer}", r.run,
                              lo=lo[:, layer].tolist(), hi=hi[:, layer].tolist()))
    conf = results[0].config.get("confidence", 0.95) if results else 0.95
    return Lines("fraction_interval", "Universal fraction per layer over training, with a bootstrap interval",
                 lines=lines, y_label="universal fraction", group_title="layer",
                 caption=f"The fraction of each layer's neurons (all seeds) that are universal at each step (the line; "
                         f"universal-neurons' own count), and a {conf:.0%} bootstrap interval over blocks of prompts "
                         "(the band): each draw resamples the blocks and recomputes every neuron's correlation with "
                         "its partner at that step, the partner and the rotation baseline held at their full-data "
                         "values, so the band is the tokens' sampling noise in the correlations, not in which "
                         "partner is best. Gurnee et al. (arXiv 2401.12181) report 1-5% of GPT-2's neurons "
                         "universal at the end of training.")


def trajectories_figure(results: list[Result]) -> Lines:
    """A few universal neurons per run (spread over lock-in steps): excess with final partners, and self-correlation
    with the last step, over training."""
    lines = []
    for r in sorted(results, key=lambda r: r.run):
        lock, uni = r.arrays["lock_in_index"], r.arrays["universal"][-1]
        cand = np.argwhere(uni & (lock >= 0))                       # [k, (seed, layer, neuron)]
        if not len(cand):
            continue
        order = np.argsort(lock[tuple(cand.T)], kind="stable")
        pick = cand[order[np.unique(np.linspace(0, len(order) - 1, min(EXAMPLES, len(order))).astype(int))]]
        for a, layer, n in pick:
            name = f"{r.run} L{layer} N{n} seed {r.scalars['seeds'][a]}"
            lines.append(Line(r.steps, r.arrays["excess_final_partner"][:, a, layer, n].tolist(), name,
                              "excess correlation with its last-step partners"))
            lines.append(Line(r.steps, r.arrays["self_corr"][:, a, layer, n].tolist(), name,
                              "correlation with itself at the last step"))
    thr = results[0].scalars["threshold"] if results else 0.5
    return Lines("trajectories", "A few universal neurons over training", lines=lines, group_title="neuron",
                 skip_reason="" if lines else "no neuron is universal at the last step of any run",
                 caption=f"Universal neurons chosen across the range of lock-in steps (earliest to latest). Left: the "
                         f"neuron's excess correlation with the neurons that are its partners at the last step, in "
                         f"the other seeds at the same step, over the rotation baseline; it is universal where this "
                         f"exceeds {thr:g}. Right: its correlation with itself at the last step, on the same tokens. "
                         f"The excess measure is Gurnee et al.'s (arXiv 2401.12181), followed here over training.")
