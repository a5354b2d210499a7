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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.analyzers.base import Analyzer, Needs, Scope, Unit
from interp.config import Options, option
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
    batch_prompts: int = option(128, ge=1)  # prompts per SGLD mini-batch
    seed: int = option(0, ge=0)


class Stages(Analyzer):
    name = "stages"
    description = "per-task loss curves with their s-curve drops, and the local learning coefficient by SGLD"
    Config = StagesConfig

    def needs(self, ref) -> Needs:
        return Needs(scope=Scope.CHECKPOINT)

    @deterministic()
    def run(self, unit: Unit, ctx) -> Result:
        from interp.metrics import scored_count, summed_loss, task_loss

        (ref,) = unit.refs
        model, prompts = ctx.model(ref), ctx.prompts(ref)
        result = self.new_result(unit)
        groups = prompts.groups()
        losses = {n: task_loss(model, prompts, rows, ctx.batch_size) for n, rows in groups}
        counts = {n: scored_count(prompts.loss_mask, rows, ctx.batch_size) for n, rows in groups}
        result.scalars["loss"] = losses
        # the groups partition the prompts: their token-weighted mean is the loss over all, without another pass
        result.scalars["loss_all"] = sum(losses[n] * counts[n] for n in losses) / max(1, sum(counts.values()))
        if self.config.llc:
            from interp.llc import SGLDConfig, estimate_llc

            prompts = self._train_prompts(ref, prompts, ctx)
            order = np.random.default_rng(self.config.seed).permutation(len(prompts))
            batches = [order[i:i + self.config.batch_prompts] for i in range(0, len(order), self.config.batch_prompts)]
            counts = [max(1, int(np.count_nonzero(prompts.loss_mask[b]))) for b in batches]

            def loss_fn(i: int):
                return summed_loss(model, prompts.tokens[batches[i]], prompts.loss_mask[batches[i]]) / counts[i]

            cfg = SGLDConfig(self.config.eps, self.config.gamma, self.config.n_chains, self.config.n_burnin,
                             self.config.n_draws, seed=self.config.seed)
            params = [p for p in model.parameters() if p.requires_grad]
            out = estimate_llc(params, loss_fn, n=sum(counts), n_batches=len(batches), config=cfg)
            result.add("chain_llcs", np.asarray(out["chain_llcs"], dtype=float), ("chain",))
            result.scalars.update(llc=out["llc"], llc_std=float(np.std(out["chain_llcs"])) if out["chain_llcs"]
                                  else float("nan"), llc_diverged=out["diverged"])
        return result

    def _train_prompts(self, ref, evaluation, ctx):
        """The LLC is a property of the loss the checkpoint was trained on: every task's *train* split plus background
        sequences (a held-out split is not at a minimum, and SGLD would descend it, giving large negative values).
        Series without a mixture (a user's token file) use the evaluation prompts."""
        if ref.mixture_spec is None:
            return evaluation
        from interp.prompts import PromptSource

        return ctx.prompts(ref, PromptSource(n_background=256, split="train", seed=self.config.seed))

    def summarize(self, results: list[Result], out_dir) -> dict:
        from pathlib import Path

        from interp.curves import rate_zero_crossings, s_curve_drops
        from interp.report.plots import pyplot, save

        out_dir = Path(out_dir)
        out = summarize_scalars(results, ("llc", "llc_std", "llc_diverged", "loss_all"))
        out["drops"], out["boundaries"], out["headline"], figures = {}, {}, {}, []
        plt = pyplot()
        for run, steps in by_run_step(results).items():
            seeds = sorted({r.seed for rs in steps.values() for r in rs})
            fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
            out["drops"][run], out["boundaries"][run] = {}, {}
            for seed in seeds:
                rows = [(st, next(r for r in rs if r.seed == seed))
                        for st, rs in steps.items() if any(r.seed == seed for r in rs)]
                xs = [st for st, _ in rows]
                drops = {}
                for task in rows[0][1].scalars["loss"]:
                    curve = [r.scalars["loss"][task] for _, r in rows]
                    drops[task] = [d.as_dict() for d in s_curve_drops(xs, curve)]
                    (line,) = axes[0].plot([max(x, 1) for x in xs], curve, marker="o", ms=3,
                                           label=f"{task} s{seed}" if len(seeds) < 4 else None)
                    for d in drops[task]:
                        axes[0].axvspan(max(d["onset_step"], 1), max(d["end_step"], 1), color=line.get_color(),
                                        alpha=0.06)
                out["drops"][run][str(seed)] = drops
                llc = [r.scalars.get("llc", float("nan")) for _, r in rows]
                if np.isfinite(llc).sum() >= 3:
                    ok = np.isfinite(llc)
                    bounds = rate_zero_crossings(np.asarray(xs)[ok], np.asarray(llc)[ok])
                    out["boundaries"][run][str(seed)] = bounds
                    axes[1].plot([max(x, 1) for x in xs], llc, marker="o", ms=3, label=f"seed {seed}")
                    for b in bounds:
                        axes[1].axvline(max(b, 1), color="0.6", lw=0.8, ls="--")
            for ax, title in zip(axes, (f"{run}: loss per task (shaded: s-curve drops)",
                                        f"{run}: LLC by SGLD (dashed: stage boundaries)")):
                ax.set_xscale("log")
                ax.set_xlabel("training step (step 0 drawn at 1)")
                ax.set_title(title, fontsize=10)
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize=7)
            axes[0].set_ylabel("mean loss")
            axes[1].set_ylabel("local learning coefficient")
            figures.append(save(fig, out_dir / f"stages_{run}.png"))
            first_drop = {task: [d[0]["onset_step"] if d else None for d in
                                 (out["drops"][run][str(s)][task] for s in seeds)]
                          for task in out["drops"][run][str(seeds[0])]}
            for task, onsets in first_drop.items():
                out["headline"][f"{run} {task}: first drop onset step (per seed)"] = [
                    None if o is None else round(o, 1) for o in onsets]
            if out["boundaries"][run]:
                out["headline"][f"{run} LLC stage boundaries (seed {seeds[0]})"] = [
                    round(b, 1) for b in out["boundaries"][run].get(str(seeds[0]), [])]
        out["figures"] = [str(f) for f in figures]
        return out
