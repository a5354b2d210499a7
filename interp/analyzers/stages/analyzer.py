"""``stages``: developmental stages across a checkpoint series (Hoogland et al., arXiv 2402.02364).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.

The LLC estimator is ``interp.analyzers.stages.llc``; the curve shapes (s-curve drops, zero crossings of a
rate) are ``interp.analyzers.stages.curves``. ``calibrate`` is off by default: it costs several extra SGLD runs
per checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.config import Options, option
from interp.errors import ConfigError
from interp.maths.determinism import deterministic
from interp.results import Result
from interp.runner.context import Needs


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
    # per-checkpoint choice of eps (interp.analyzers.stages.llc.calibrate_eps); eps above is then the fallback
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


class StagesResult(Result):
    # the LLC and everything read off its SGLD chains: another thread count draws another sample of the chains
    SAMPLED = ("llc", "llc_std", "llc_trend", "llc_diverged", "chain_llcs", "llc_trace", "eps_used", "calib*")


class Stages(Analyzer):
    name = "stages"
    Config = StagesConfig
    Result = StagesResult
    version = 2   # the loss at w* from per-prompt losses in large passes (summed in another order)
    question = ("Where does each task's loss drop during training, and where does the model's complexity (the "
                "local learning coefficient) change direction?")

    def needs(self, ref) -> Needs:
        return Needs()

    @deterministic()
    def run(self, unit: Unit, ctx) -> Result:
        from interp.maths.losses import scored_count, task_loss

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
        from interp.analyzers.stages.llc import (
            SGLDConfig,
            calibrate_eps,
            eps_grid,
            estimate_llc,
            prompt_loss,
            trace_trend,
        )

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
        from interp.prompts.source import PromptSource

        return ctx.prompts(ref, PromptSource(n_background=256, split="train", seed=self.config.seed))


