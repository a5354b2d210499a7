"""``stages``: developmental stages across a checkpoint series (SCIENCE.md section 6; Hoogland et al., arXiv
2402.02364).

Per checkpoint: every task's mean loss on the evaluation prompts (and the background's), and the local learning
coefficient ``llc`` of the model on those prompts, estimated by SGLD (``interp.llc``: n_beta = m / log m for the m
scored tokens, chains and their spread recorded, diverged chains counted and left out).

Across the series (``summarize``), per run and seed: the s-curve drops of each task's loss (onset step, width in
decades, fall; ``interp.curves.s_curve_drops``), and the stage boundaries, where the LLC's rate of change over
log-steps changes sign (``interp.curves.rate_zero_crossings``). Figures: loss per task vs step with the drops shaded,
and the LLC vs step with its boundaries.

The SGLD step ``eps`` must suit the model: the chain is stable while ``eps * n_beta * (largest Hessian eigenvalue)``
stays below ~4; diverged chains are reported per checkpoint (``llc_diverged``), and a stage analysis on a new model
family should start by checking that count is 0 and the chain spread (``llc_std``) is small against the trend.
``llc_trend`` says whether the chains levelled off after burn-in (``interp.llc.trace_trend``: the t-statistic of the
loss's slope over the draws; above ~3 the chain is still moving). ``calibrate=true`` chooses eps per
checkpoint instead (``interp.llc.calibrate_eps`` over a geometric grid from ``calib_eps_max`` down to
``calib_eps_min``): the chosen eps (``eps_used``), every candidate's loss trace and the verdicts are stored, and
``eps_used`` falls back to ``eps`` (``calibrated`` false) where no candidate qualifies. Off by default: it costs
several extra SGLD runs per checkpoint (README, "Stages").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.analyzers.base import Analyzer, Needs, Scope, Unit
from interp.config import Options, option
from interp.errors import ConfigError
from interp.determinism import deterministic
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step


@dataclass(frozen=True)
class StagesConfig(Options):
    llc: bool = True
    eps: float = option(1e-4, gt=0)
    gamma: float = option(100.0, ge=0)      # localisation: keeps chains near checkpoints not yet at a minimum
    n_chains: int = option(2, ge=1)
    n_burnin: int = option(10, ge=0)
    n_draws: int = option(20, ge=1)
    batch_prompts: int = option(128, ge=1)  # prompts per SGLD mini-batch, at most
    # and at most this many tokens: a mini-batch of 64-token sequences costs 20x one of 3-token task prompts, and
    # SGLD needs many small steps, not large batches (the LLC's n is the whole prompt set either way)
    batch_tokens: int = option(1024, ge=1)
    seed: int = option(0, ge=0)
    # per-checkpoint choice of eps (interp.llc.calibrate_eps); eps above is then the fallback
    calibrate: bool = False
    calib_eps_max: float = option(1e-2, gt=0)
    calib_eps_min: float = option(1e-6, gt=0)
    calib_n: int = option(9, ge=2)              # grid points, evenly spaced in log eps
    calib_margin: float = option(10.0, ge=1)    # chosen eps <= largest non-diverging candidate / margin
    calib_flat_tol: float = option(3.0, gt=0)   # flat: slope of the loss over the draws <= this many std errors

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calib_eps_min >= self.calib_eps_max:
            raise ConfigError(f"{self._where('calib_eps_min')} = {self.calib_eps_min}: must be below calib_eps_max "
                              f"= {self.calib_eps_max} (the calibration grid runs from calib_eps_max down to it)")


class Stages(Analyzer):
    name = "stages"
    description = "per-task loss curves with their s-curve drops, and the local learning coefficient by SGLD"
    Config = StagesConfig
    version = 2   # the loss at w* from per-prompt losses in large passes (summed in another order)
    question = ("Where does each task's loss drop during training, and where does the model's complexity (the "
                "local learning coefficient) change direction?")
    method = ("Per checkpoint: every task's mean loss on its held-out prompts, and the local learning coefficient "
              "llc = n beta (mean loss over SGLD draws - loss at the checkpoint), estimated by localised SGLD on the "
              "checkpoint's training data (n beta = m / log m for m scored tokens; chains and their spread "
              "recorded; diverged chains counted and left out). Across the series, per run and seed: the s-curve "
              "drops of each task's loss (onset, width in decades, fall) and the stage boundaries, where the LLC's "
              "rate of change over log-steps changes sign (Hoogland et al., arXiv 2402.02364).\n\n"
              "Caveats: the SGLD step must suit the model (stable while eps x n beta x the largest Hessian "
              "eigenvalue stays below about 4); check that no chain diverged (llc_diverged in the numbers) and that "
              "the chain spread (llc_std) is small against the trend. The chains must also have levelled off after "
              "burn-in (llc_trend, the t-statistic of the loss's slope over the draws, below about 3; the SGLD "
              "trace figure): the default 30-step chains often have not (35 of the 72 bundled checkpoints), and "
              "their LLC then grows with eps and with the number of steps, so compare it across checkpoints at one "
              "eps only. calibrate=true chooses "
              "eps per checkpoint (largest step 10x inside the divergence boundary whose trace is flat) and falls "
              "back to eps where none qualifies. Log-spaced checkpoints resolve a drop only to the nearest "
              "checkpoints.")

    def needs(self, ref) -> Needs:
        return Needs(scope=Scope.CHECKPOINT)

    @deterministic()
    def run(self, unit: Unit, ctx) -> Result:
        from interp.metrics import scored_count, task_loss

        (ref,) = unit.refs
        model, prompts = ctx.model(ref), ctx.prompts(ref)
        result = self.new_result(unit)
        groups = prompts.groups()
        per = ctx.batch_rows(prompts)
        losses = {n: task_loss(model, prompts, rows, per) for n, rows in groups}
        counts = {n: scored_count(prompts.loss_mask, rows, per) for n, rows in groups}
        result.scalars["loss"] = losses
        # the groups partition the prompts: their token-weighted mean is the loss over all, without another pass
        result.scalars["loss_all"] = sum(losses[n] * counts[n] for n in losses) / max(1, sum(counts.values()))
        if self.config.llc:
            self._llc(model, self._train_prompts(ref, prompts, ctx), result)
        return result

    def _llc(self, model, prompts, result: Result) -> None:
        """The LLC on ``prompts`` at the configured eps, or at the calibrated one (``calibrate``)."""
        from interp.llc import SGLDConfig, calibrate_eps, eps_grid, estimate_llc, prompt_loss, trace_trend

        c = self.config
        per = max(1, min(c.batch_prompts, c.batch_tokens // prompts.tokens.shape[1]))
        problem = prompt_loss(model, prompts, per, c.seed)
        # the loss at w*: large no-grad passes of ~8k tokens (the logits of a whole 512-prompt chunk of 2,048-token
        # sequences would be hundreds of GB)
        init = problem.init_loss(model, max(1, 8192 // prompts.tokens.shape[1]))
        cfg = SGLDConfig(c.eps, c.gamma, c.n_chains, c.n_burnin, c.n_draws, seed=c.seed)
        out = None
        if c.calibrate:
            cal = calibrate_eps(problem.params, problem.loss_fn, problem.n, len(problem.batches), cfg,
                                eps_grid(c.calib_eps_max, c.calib_eps_min, c.calib_n), c.calib_flat_tol,
                                c.calib_margin, init)
            result.add("calib_eps", cal.grid, ("candidate",))
            result.add("calib_ran", cal.ran, ("candidate",))
            result.add("calib_diverged", cal.diverged, ("candidate",))
            result.add("calib_trend", cal.trend, ("candidate",))
            result.add("calib_llc", cal.llc, ("candidate",))
            result.add("calib_trace", cal.traces, ("candidate", "chain", "sgld_step"))
            result.scalars.update(calibrated=cal.index >= 0, calib_ceiling=cal.ceiling)
            out, cfg = cal.estimate, SGLDConfig(cal.eps if cal.index >= 0 else c.eps, c.gamma, c.n_chains,
                                                 c.n_burnin, c.n_draws, seed=c.seed)
        if out is None:
            out = estimate_llc(problem.params, problem.loss_fn, problem.n, len(problem.batches), cfg, init)
        chains = out["chain_llcs"]
        result.add("chain_llcs", np.asarray(chains, dtype=float), ("chain",))
        result.add("llc_trace", out["trace"], ("chain", "sgld_step"))
        result.scalars.update(llc=out["llc"], llc_std=float(np.std(chains)) if chains else float("nan"),
                              llc_diverged=out["diverged"], llc_trend=trace_trend(out["trace"], c.n_burnin),
                              eps_used=cfg.eps, llc_init_loss=out["init_loss"], llc_n_beta=out["n_beta"])

    def _train_prompts(self, ref, evaluation, ctx):
        """The LLC is a property of the loss the checkpoint was trained on: every task's *train* split plus background
        sequences (a held-out split is not at a minimum, and SGLD would descend it, giving large negative values).
        Series without a mixture (a user's token file) use the evaluation prompts."""
        if ref.mixture_spec is None:
            return evaluation
        from interp.prompts import PromptSource

        return ctx.prompts(ref, PromptSource(n_background=256, split="train", seed=self.config.seed))

    def summarize(self, results: list[Result], out_dir) -> dict:
        from interp.curves import rate_zero_crossings, s_curve_drops
        from interp.report.figures import Line, Mark, per_run_lines

        from interp.analyzers.stages_summary import sgld_figures, sgld_headline

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
        llc_lines = per_run_lines(out["per_run"], "llc")
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
              caption=f"Each task's mean loss on its held-out prompts (background: next-token loss on background "
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
              caption=f"The LLC estimated by SGLD on each checkpoint's training data: how complex the solution is. "
                      f"{seeds} Dashed lines are stage boundaries, where the LLC's rate of change over log-steps "
                      f"changes sign (Hoogland et al., arXiv 2402.02364). Negative values come from checkpoints far "
                      f"from any minimum, where SGLD descends: they say nothing about complexity and are shown, not "
                      f"clipped."),
    ]


def _unique(marks: list) -> list:
    """One mark per (position, run, panel): seeds that agree draw one line, not three on top of each other."""
    seen, out = set(), []
    for m in marks:
        if (m.x0, m.x1, m.group, m.panel) not in seen:
            seen.add((m.x0, m.x1, m.group, m.panel))
            out.append(m)
    return out
