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
    # flat: the slope of the loss over the draws at most this many standard errors, for the calibration's choice and
    # for calling an LLC a measurement (every chain levelled off)
    calib_flat_tol: float = option(3.0, gt=0)
    llc_prompts: int = option(512, ge=1)        # training data the SGLD chains sample (prompts, whole batches)
    # prompts per group (each task, the background) its loss is measured on: the first ones (0: all); a curve over
    # steps needs the same prompts at every step, not all of a 1e8-token corpus
    loss_prompts: int = option(512, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calib_eps_min >= self.calib_eps_max:
            raise ConfigError(f"{self._where('calib_eps_min')} = {self.calib_eps_min}: must be below calib_eps_max "
                              f"= {self.calib_eps_max} (the calibration grid runs from calib_eps_max down to it)")


class StagesResult(Result):
    # the LLC and everything read off its SGLD chains: another thread count draws another sample of the chains
    SAMPLED = ("llc", "llc_std", "llc_trend", "llc_diverged", "llc_levelled", "llc_unreliable", "chain_llcs",
               "llc_trace", "eps_used", "calib*")


class Stages(Analyzer):
    name = "stages"
    Config = StagesConfig
    Result = StagesResult
    # 3: task losses from any source; the LLC on data drawn as training drew it, and flagged where it is not a
    # measurement. 4: each loss on at most loss_prompts prompts
    version = 4
    inputs = ()
    inputs_any = ("prompts", "tasks")   # loss curves of the tasks, and of the text; the LLC samples the text
    question = ("Where does each task's loss drop during training, and where does the model's complexity (the "
                "local learning coefficient) change direction?")

    def needs(self, ref) -> Needs:
        return Needs()

    def own_work(self, refs, tokens: int, params: int, tapped: bool = False) -> tuple[float, int]:
        """Its loss pass, and SGLD's forward and backward steps when the LLC is on."""
        c = self.config
        sgld = c.n_chains * (c.n_burnin + c.n_draws) * 6 * params * c.batch_tokens if c.llc else 0
        return 2.0 * params * tokens + sgld, 4 * params * (3 if c.llc else 1)

    @deterministic()
    def run(self, unit: Unit, ctx) -> Result:
        (ref,) = unit.refs
        model = ctx.model(ref)
        result = self.new_result(unit)
        have = ctx.available(ref)
        losses, counts = {}, {}
        cap = self.config.loss_prompts or None
        if "tasks" in have:
            self._losses(model, ctx, ctx.tasks(ref).prompts, losses, counts, cap=cap)
        if "prompts" in have:
            prompts = ctx.prompts(ref)
            self._losses(model, ctx, prompts.subset(np.flatnonzero(prompts.task_id < 0)[:cap]), losses, counts,
                         tasks=False)
        result.scalars["loss"] = losses
        # the groups partition the prompts: their token-weighted mean is the loss over all, without another pass
        result.scalars["loss_all"] = sum(losses[n] * counts[n] for n in losses) / max(1, sum(counts.values()))
        if self.config.llc:
            data, source = self._llc_data(ref, ctx)
            result.scalars["llc_data"] = source
            if data is not None:
                self._llc(model, data, result)
        return result

    @staticmethod
    def _losses(model, ctx, prompts, losses: dict, counts: dict, tasks: bool = True, cap: int | None = None) -> None:
        """Each group's mean scored loss on its first ``cap`` prompts (every task; the background as
        ``background``)."""
        from interp.maths.losses import scored_count, task_loss

        if not len(prompts):
            return
        per = ctx.batch_rows(prompts)
        for name, rows in prompts.groups():
            rows = rows[:cap]
            if tasks == (name != "background"):
                losses[name] = task_loss(model, prompts, rows, per)
                counts[name] = scored_count(prompts.loss_mask, rows, per)

    def _llc_data(self, ref, ctx):
        """What the LLC's chains sample: the loss the checkpoint was trained on. For a run interp's trainer made, the
        trainer's own batches just before the checkpoint's step (tasks at their training frequencies, the background
        language around them; a held-out split is not at a minimum, and SGLD would descend it); else the text the
        user names (the evaluation prompts' background rows). (None, why) when there is neither."""
        from interp.prompts.prompt_set import PromptSet
        from interp.toys.batches import batches_near

        near = batches_near(ref, self.config.llc_prompts)
        if near is not None:
            batches, steps = near
            names = batches[0].task_names
            data = PromptSet.concat([PromptSet(b.tokens, b.task_id, b.loss_mask, names) for b in batches])
            return data, f"the trainer's batches at steps {steps[0]}-{steps[-1]} ({len(data)} prompts)"
        if "prompts" in ctx.available(ref):
            prompts = ctx.prompts(ref)
            text = prompts.subset(prompts.task_id < 0)
            if len(text):
                return text, f"{ctx.source(ref).describe(ref)} ({len(text)} prompts)"
        return None, "none: the series has no training data interp knows and no text (--tokens)"

    def _llc(self, model, prompts, result: Result) -> None:
        """The LLC on ``prompts`` at the configured eps, or at the calibrated one (``calibrate``)."""
        from interp.analyzers.stages import llc as L

        c = self.config
        per = max(1, min(c.batch_prompts, c.batch_tokens // prompts.tokens.shape[1]))
        problem = L.prompt_loss(model, prompts, per, c.seed)
        # the loss at w*: large no-grad passes of ~8k tokens (the logits of a whole 512-prompt chunk of 2,048-token
        # sequences would be hundreds of GB)
        init = problem.init_loss(model, max(1, 8192 // prompts.tokens.shape[1]))
        cfg = L.SGLDConfig(c.eps, c.gamma, c.n_chains, c.n_burnin, c.n_draws, seed=c.seed)
        out = None
        if c.calibrate:
            cal = L.calibrate_eps(problem.params, problem.loss_fn, problem.n, len(problem.batches), cfg,
                                  L.eps_grid(c.calib_eps_max, c.calib_eps_min, c.calib_n), c.calib_flat_tol,
                                  c.calib_margin, init)
            for key in ("eps", "ran", "diverged", "trend", "llc"):
                result.add(f"calib_{key}", getattr(cal, "grid" if key == "eps" else key), ("candidate",))
            result.add("calib_trace", cal.traces, ("candidate", "chain", "sgld_step"))
            result.scalars.update(calibrated=cal.index >= 0, calib_ceiling=cal.ceiling)
            out, cfg = cal.estimate, L.SGLDConfig(cal.eps if cal.index >= 0 else c.eps, c.gamma, c.n_chains,
                                                   c.n_burnin, c.n_draws, seed=c.seed)
        if out is None:
            out = L.estimate_llc(problem.params, problem.loss_fn, problem.n, len(problem.batches), cfg, init)
        chains = out["chain_llcs"]
        result.add("chain_llcs", np.asarray(chains, dtype=float), ("chain",))
        result.add("llc_trace", out["trace"], ("chain", "sgld_step"))
        levelled = [L.trace_trend(out["trace"][i:i + 1], c.n_burnin) <= c.calib_flat_tol
                    for i in range(len(out["trace"]))]
        result.scalars.update(llc=out["llc"], llc_std=float(np.std(chains)) if chains else float("nan"),
                              llc_diverged=out["diverged"], llc_trend=L.trace_trend(out["trace"], c.n_burnin),
                              llc_levelled=int(sum(levelled)), eps_used=cfg.eps, llc_init_loss=out["init_loss"],
                              llc_n_beta=out["n_beta"])
        result.scalars["llc_unreliable"] = unreliable(out["llc"], int(sum(levelled)), len(levelled), out["diverged"])


def unreliable(llc: float, levelled: int, chains: int, diverged: int) -> str:
    """Why an LLC estimate is not a measurement ("" when it is one): negative (SGLD found lower loss near w*, which
    is then not a minimum of the sampled loss), not every chain levelled off after burn-in (the estimate still moves
    with the number of steps), or chains diverged."""
    why = []
    if not np.isfinite(llc):
        why.append("no chain finished")
    elif llc < 0:
        why.append("negative: the checkpoint is not at a minimum of the sampled loss")
    if levelled < chains:
        why.append(f"{chains - levelled} of {chains} chains did not level off")
    if diverged:
        why.append(f"{diverged} chains diverged")
    return "; ".join(why)
