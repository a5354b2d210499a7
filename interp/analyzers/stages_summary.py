"""The ``stages`` analyzer's SGLD diagnostics across a series: the loss traces of the chains (did they level off
after burn-in?), and, with ``calibrate=true``, every candidate step size's trace at one checkpoint and the chosen step
over training. Figure specs only (``interp.report.figures``); the numbers come from the unit results."""

from __future__ import annotations

import warnings

import numpy as np

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
        rows.append(H.text(run, "SGLD chains levelled off (trend t <= 3)",
                           f"{int(np.sum(trend <= 3))} of {len(rs)} checkpoints",
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
                      "(interp.llc.calibrate_eps). devinterp's guidance (after Lau et al., arXiv 2308.12108) is to "
                      "take the largest step whose chains stay stable and level off."),
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
