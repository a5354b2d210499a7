"""The ``stages`` analyzer's SGLD diagnostics across a series: the loss traces of the chains (did they level off
after burn-in?), and, with ``calibrate=true``, every candidate step size's trace at one checkpoint and the chosen step
over training. Figure specs only (``interp.report.figures``); the numbers come from the unit results."""

from __future__ import annotations

import warnings

import numpy as np

from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step


def _llc_units(r: Result, trace: np.ndarray) -> np.ndarray:
    """[chain, step] losses as n_beta (mean over chains - loss at w*): the running LLC each step stands for."""
    with warnings.catch_warnings():       # steps after every chain stopped (diverged) are all-NaN: left NaN, a gap
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(trace, axis=0)
    return r.scalars["llc_n_beta"] * (mean - r.scalars["llc_init_loss"])


def _last_units(results: list[Result]) -> dict[str, Result]:
    """Per run, the last step's result of its lowest seed (the checkpoint the trace figures show)."""
    out = {}
    for run, steps in by_run_step(results).items():
        last = steps[max(steps)]
        out[run] = min(last, key=lambda r: r.seed)
    return out


def sgld_headline(results: list[Result]) -> list[dict]:
    from interp.report import headline as H

    rows = []
    for run, steps in by_run_step(results).items():
        rs = [r for rr in steps.values() for r in rr if "llc_trend" in r.scalars]
        if not rs:
            continue
        trend = np.asarray([r.scalars["llc_trend"] for r in rs], dtype=float)
        tol = rs[0].config.get("calib_flat_tol", 3.0)
        rows.append(H.text(run, f"SGLD chains levelled off (trend t <= {tol:g})",
                           f"{int(np.sum(trend <= tol))} of {len(rs)} checkpoints",
                           "llc_trend per checkpoint in the numbers"))
        cal = [r for r in rs if "calibrated" in r.scalars]
        if cal:
            ok = [r for r in cal if r.scalars["calibrated"]]
            eps = sorted({r.scalars["eps_used"] for r in ok})
            rows.append(H.text(run, "SGLD step calibrated",
                               f"{len(ok)} of {len(cal)} checkpoints"
                               + (f", eps {eps[0]:.1e} to {eps[-1]:.1e}" if eps else "")))
    return rows


def sgld_figures(results: list[Result], per_run: dict) -> list:
    from interp.report.figures import Line, Lines, Mark, per_run_lines

    have = [r for r in results if "llc_trace" in r.arrays]
    last = _last_units(have)
    burn = {r.config["n_burnin"] for r in have}
    trace_lines = [Line(list(range(r.arrays["llc_trace"].shape[1])), _llc_units(r, r.arrays["llc_trace"]), run,
                        label=f"step {r.step}, seed {r.seed}, eps {r.scalars['eps_used']:.1e}")
                   for run, r in last.items()]
    figs = [Lines("sgld_trace", "SGLD chains at the last checkpoint of each run: do they level off after burn-in?",
                  x_label="SGLD step", y_label="n beta (loss - loss at checkpoint)", lines=trace_lines,
                  marks=[Mark(b, None, "", "", "end of burn-in") for b in sorted(burn)], log_x=False,
                  skip_reason="" if trace_lines else "the LLC was not estimated (llc=false)",
                  caption="The mean over chains of each SGLD step's mini-batch loss, minus the loss at the checkpoint, "
                          "times n beta: the running value the LLC averages after burn-in (dashed line). A trustworthy "
                          "estimate needs this to have levelled off; a curve still climbing at the end means the "
                          "chains had not mixed in the steps given, and the LLC then grows with eps and with the "
                          "number of steps (llc_trend in the numbers is the t-statistic of its slope over the draws). "
                          "Lau et al. (arXiv 2308.12108), who define the estimator, and devinterp's guidance read "
                          "these traces the same way.")]
    cal = [r for r in have if "calib_trace" in r.arrays]
    why = "calibration is off (calibrate=false): every checkpoint used the fixed eps"
    cal_lines, cal_marks, notes, title = [], [], [], "SGLD step-size calibration"
    if cal:
        r = _shown_calibration(cal)
        title += f" at {r.run} step {r.step}, seed {r.seed}"
        cal_lines, notes = _calibration_lines(r)
        cal_marks = [Mark(r.config["n_burnin"], None, "", "", "end of burn-in")]
    eps_lines = per_run_lines(per_run, "eps_used") if cal else []
    figs += [
        Lines("sgld_calibration", title, x_label="SGLD step", y_label="n beta (loss - loss at checkpoint)",
              lines=cal_lines, marks=cal_marks, log_x=False, group_title="candidate", skip_reason="" if cal else why,
              notes=notes,
              caption="Each candidate step size's SGLD chains at one checkpoint (mean over chains), numbered from "
                      "the largest. A candidate diverges when a chain's loss blows up (its line stops; drawn until it "
                      "leaves the range of the others). The ceiling is the largest non-diverging step / calib_margin, "
                      "which bounds SGLD's step-size bias; candidates between it and that step are skipped (not "
                      "drawn), and the largest candidate under the ceiling is chosen if its curve is flat after "
                      "burn-in (the t-statistic of its slope over the draws below calib_flat_tol). Otherwise none is "
                      "(the chains are too short for a safe step) and the fixed eps is used "
                      "(interp.analyzers.stages.llc.calibrate_eps). devinterp's guidance (after Lau et al., arXiv "
                      "2308.12108) is to take the largest step whose chains stay stable and level off."),
        Lines("sgld_eps", "Calibrated SGLD step over training", y_label="eps used", lines=eps_lines, log_y=True,
              skip_reason="" if cal else why,
              caption="The step size each checkpoint's LLC was estimated with: the calibrated one, or the fixed eps "
                      "where no candidate qualified (calibrated false in the numbers). Sharper minima (larger "
                      "curvature) need smaller steps (the SGLD estimator of Lau et al., arXiv 2308.12108)."),
    ]
    return figs


def _shown_calibration(cal: list[Result]) -> Result:
    """The checkpoint whose calibration is drawn: the last step of the first run, lowest seed, preferring one where
    a candidate qualified (its chosen trace is the interesting one)."""
    ok = [r for r in cal if r.scalars.get("calibrated")] or cal
    first = min(r.run for r in ok)
    return min((r for r in ok if r.run == first), key=lambda r: (-r.step, r.seed))


def _calibration_lines(r: Result) -> tuple[list, list[str]]:
    """One line per candidate that ran, named in grid order (largest eps first); a diverging candidate is cut where
    it leaves 3x the range of the others, so that they stay readable."""
    from interp.report.figures import Line

    a = r.arrays
    ys = {i: _llc_units(r, a["calib_trace"][i]) for i in np.flatnonzero(a["calib_ran"])}
    calm = [np.abs(y[np.isfinite(y)]) for i, y in ys.items() if not a["calib_diverged"][i]]
    cap = 3 * max((float(v.max()) for v in calm if v.size), default=np.inf)
    lines, notes = [], []
    for i, y in ys.items():
        e, div = float(a["calib_eps"][i]), bool(a["calib_diverged"][i])
        chosen = bool(r.scalars["calibrated"]) and e == r.scalars["eps_used"]
        tag = " (chosen)" if chosen else (" (diverged)" if div else "")
        if div and cap < np.inf and (np.abs(y[np.isfinite(y)]) > cap).any():
            notes.append(f"eps {e:.1e}: diverged, drawn until it passed {cap:.3g}")
            y = np.where(np.abs(y) <= cap, y, np.nan)
        lines.append(Line(list(range(len(y))), y, f"#{i + 1} eps {e:.1e}{tag}"))
    return lines, notes


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Per run and seed: each task's s-curve drops and the LLC's stage boundaries; headline rows and figures."""
    from interp.analyzers.stages.curves import rate_zero_crossings, s_curve_drops
    from interp.report.figures import Line, Mark, per_run_lines


    out = summarize_scalars(results, ("llc", "llc_std", "llc_diverged", "llc_trend", "eps_used", "calibrated",
                                      "loss_all"))
    out["drops"], out["boundaries"], out["headline"] = {}, {}, []
    loss_lines, marks = [], []
    for run, steps in by_run_step(results).items():
        seeds = sorted({r.seed for rs in steps.values() for r in rs})
        out["drops"][run], out["boundaries"][run] = {}, {}
        for seed in seeds:
            rows = [(st, next(r for r in rs if r.seed == seed))
                    for st, rs in steps.items() if any(r.seed == seed for r in rs)]
            xs = [st for st, _ in rows]
            drops = {}
            for task in rows[0][1].scalars["loss"]:
                curve = [r.scalars["loss"][task] for _, r in rows]
                drops[task] = [d.as_dict() for d in s_curve_drops(xs, curve)]
                loss_lines.append(Line(xs, curve, run, task, seed=seed))
                marks += [Mark(round(d["onset_step"], 1), None, run, task, "drop onset") for d in drops[task]]
            out["drops"][run][str(seed)] = drops
            llc = [r.scalars.get("llc", float("nan")) for _, r in rows]
            if np.isfinite(llc).sum() >= 3:
                ok = np.isfinite(llc)
                bounds = rate_zero_crossings(np.asarray(xs)[ok], np.asarray(llc)[ok])
                out["boundaries"][run][str(seed)] = bounds
                marks += [Mark(round(b, 1), None, run, "llc", "stage boundary") for b in bounds]
        loss_lines += _mean_lines(loss_lines, run)
        out["headline"] += _headline(run, steps, seeds, out)
    out["headline"] += sgld_headline(results)
    llc_lines = per_run_lines(out["per_run"], "llc") + unreliable_lines(results)
    figures = _figures(loss_lines, llc_lines, marks) + sgld_figures(results, out["per_run"])
    out["figures"] = [f.to_json() for f in figures]
    return out


def _mean_lines(lines: list, run: str) -> list:
    """The mean over seeds of each (run, panel)'s seed lines, at the steps every seed has."""
    from interp.report.figures import seed_lines

    out = []
    for panel in dict.fromkeys(l.panel for l in lines if l.group == run and l.seed is not None):
        mine = {l.seed: (l.x, l.y) for l in lines if l.group == run and l.panel == panel and l.seed is not None}
        out += [l for l in seed_lines(mine, run, panel) if l.seed is None]
    return out


def _headline(run: str, steps: dict, seeds: list[int], out: dict) -> list[dict]:
    from interp.report import headline as H

    rows = []
    drops = out["drops"][run]
    for task in drops[str(seeds[0])]:
        onsets = {s: (d[0]["onset_step"] if d else None) for s in seeds for d in [drops[str(s)][task]]}
        rows.append(H.seeds(run, f"{task}: onset step of the first loss drop", onsets, 1))
    last = out["per_run"][run][str(max(steps))]
    if "llc" in last:
        why = {r.seed: r.scalars.get("llc_unreliable", "") for r in steps[max(steps)]}
        bad = {s: w for s, w in why.items() if w}
        if bad:   # a number that is not a measurement must not read like one
            values = ", ".join(f"seed {s}: {v:.1f}" for s, v in last["llc"]["per_seed"].items() if v is not None)
            rows.append(H.text(run, f"LLC at step {max(steps)}: unreliable in {len(bad)} of {len(why)} seeds",
                               "; ".join(f"seed {s}: {w}" for s, w in sorted(bad.items())),
                               note=f"estimates, not measurements: {values}"))
        else:
            rows.append(H.seeds(run, f"LLC at step {max(steps)}", last["llc"]["per_seed"], 1, last["llc"]["mean"]))
    if out["boundaries"][run]:
        bounds = out["boundaries"][run].get(str(seeds[0]), [])
        rows.append(H.text(run, f"LLC stage boundaries (seed {seeds[0]})",
                           ", ".join(f"step {b:.1f}" for b in bounds) or "none"))
    return rows


def _figures(loss_lines: list, llc_lines: list, marks: list) -> list:
    from interp.report.figures import Lines, Mark

    seeds = "Thin lines are single seeds, the thick line their mean; colour is the run."
    return [
        Lines("loss_per_task", "Loss of each task over training, one panel per task (dashed: onsets of s-curve drops)",
              y_label="mean loss", lines=loss_lines, marks=_unique([m for m in marks if m.panel != "llc"]),
              caption=f"Each task's mean loss on its evaluated prompts (its held-out split; every item of a task file "
                      f"without splits; background: next-token loss on the background text "
                      f"sequences). {seeds} Dashed lines mark where the s-curve detector finds a drop starting (in "
                      f"any seed; widths and falls are in summary.json): a plateau followed by a fall is a task "
                      f"being learned. Multi-component learning "
                      f"predicts successive drops, and Hoogland et al. (arXiv 2402.02364) tie such stages to changes "
                      f"in the local learning coefficient."),
        Lines("llc", "Local learning coefficient (SGLD) over training, with its stage boundaries",
              y_label="local learning coefficient", lines=llc_lines,
              marks=_unique([Mark(m.x0, None, m.group, "", m.label) for m in marks if m.panel == "llc"]),
              zero_line=True,
              skip_reason="" if llc_lines else "the LLC was not estimated (llc=false) or has too few finite values",
              caption=f"The LLC estimated by SGLD on each checkpoint's training data (the trainer's own batches; "
                      f"the named text for other series): how complex the solution is. {seeds} Dashed lines are "
                      f"stage boundaries, where the LLC's rate of change over log-steps changes sign (Hoogland et "
                      f"al., arXiv 2402.02364). Grey points are not measurements: the estimate is negative (SGLD "
                      f"found lower loss near the checkpoint, which is then no minimum of the sampled loss) or a "
                      f"chain did not level off after burn-in; the reason for each is in the numbers "
                      f"(llc_unreliable)."),
    ]


def _unique(marks: list) -> list:
    """One mark per (position, run, panel): seeds that agree draw one line, not three on top of each other."""
    seen, out = set(), []
    for m in marks:
        if (m.x0, m.x1, m.group, m.panel) not in seen:
            seen.add((m.x0, m.x1, m.group, m.panel))
            out.append(m)
    return out


def unreliable_lines(results: list[Result]) -> list:
    """Per run and seed, the LLC estimates that are not measurements (``llc_unreliable``), drawn as faint points."""
    from interp.report.figures import Line

    out = []
    for run, steps in by_run_step(results).items():
        for seed in sorted({r.seed for rs in steps.values() for r in rs}):
            pts = [(st, r.scalars["llc"]) for st, rs in steps.items() for r in rs
                   if r.seed == seed and r.scalars.get("llc_unreliable") and "llc" in r.scalars]
            if pts:
                out.append(Line([p[0] for p in pts], [p[1] for p in pts], run, "", seed=seed,
                                label="not a measurement", faint=True, points=True))
    return out
