"""``fourier-competition``: which Fourier circles of a modular-addition model survive training (SCIENCE.md 5;
Ding et al., "survival of the fittest", arXiv 2405.17420).

Per checkpoint of a run with a ``modular_addition`` task (p operands, ordered by their hidden rank):

- ``signal[k]``: ``s_k = ||FFT over ranks of W_E[operands] at k||_2``, k = 1..(p-1)/2 (each k stands for the pair
  k, p - k: one circle; ``interp.manifolds.embedding_spectrum``);
- ``grad_signal[k]``: the same spectrum of the training loss's gradient with respect to those embedding rows, on the
  task's train split: how hard training is pushing each circle at that checkpoint;
- ``surviving[k]``: ``s_k > 2 * mean(s)``; ``n_circles`` = their count.

Across the series (``summarize``), per run: circles per step; the survivors at the last step, and how well each
frequency's signal and gradient signal at the *first* checkpoint predict survival (AUROC pooled over seeds: 0.5 is
chance; the paper's "fittest" frequencies, with high initial signal and gradient, survive more often); figures of
the signal of every frequency over steps, survivors highlighted.

The paper's linear (Lotka-Volterra-like) dynamics fit needs every step, not a log-spaced series; it lives in
``analyses/fourier_competition.py``, which trains the paper's own MLP setup.
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
class FourierCompetitionConfig(Options):
    survive_factor: float = option(2.0, gt=0)     # s_k > factor * mean(s) survives (the paper's rule)


class FourierCompetitionResult(Result):
    @property
    def surviving(self) -> np.ndarray:
        """[frequency] bool; frequency k at index k - 1."""
        return self.arrays["surviving"]


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half); NaN without both. All
    pairs are compared: the sets here are frequencies x seeds, small."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


class FourierCompetition(Analyzer):
    name = "fourier-competition"
    description = "Fourier circles of modular-addition embeddings over training: which survive, and were they fittest"
    Config = FourierCompetitionConfig
    Result = FourierCompetitionResult
    requires = "runs with a modular_addition task in their mixture (it reads the Fourier circles of its embedding)"

    def needs(self, ref) -> Needs:
        return Needs(scope=Scope.CHECKPOINT)

    def select(self, refs: list) -> list:
        from interp.tasks import find_task

        return [r for r in refs if find_task(r.mixture_spec, "modular_addition") is not None]

    @deterministic()   # bit-reproducible backward passes (the embedding's scatter-add)
    def run(self, unit: Unit, ctx) -> FourierCompetitionResult:
        import torch

        from interp.metrics import summed_loss
        from interp.manifolds import embedding_spectrum, surviving
        from interp.tasks import build_tasks, find_task

        (ref,) = unit.refs
        spec = ref.mixture_spec
        task = build_tasks(spec)[find_task(spec, "modular_addition").name]
        model = ctx.model(ref)
        ops = torch.as_tensor(task.operand_tokens, device=model.W_E.device)
        train = task.prompt_set("train", tuple(t.name for t in spec.tasks))
        with torch.enable_grad():
            loss = summed_loss(model, train.tokens, train.loss_mask) / max(1, int(train.loss_mask.sum()))
            (grad,) = torch.autograd.grad(loss, [model.W_E])
        w_e = model.W_E.detach()[ops].double().cpu().numpy()                      # [p, d_model] by rank
        s = embedding_spectrum(w_e)
        g = embedding_spectrum(grad[ops].double().cpu().numpy())
        alive = surviving(s, self.config.survive_factor)
        result = self.new_result(unit)
        result.add("signal", s, ("frequency",))
        result.add("grad_signal", g, ("frequency",))
        result.add("surviving", alive, ("frequency",))
        result.scalars.update(p=len(task.operand_tokens), n_circles=int(alive.sum()),
                              circles=[int(k) + 1 for k in np.flatnonzero(alive)],
                              train_loss=float(loss.detach()), signal_concentration=float(np.sort(s)[-3:].sum() / s.sum()))
        return result

    def summarize(self, results: list[Result], out_dir) -> dict:
        from pathlib import Path

        from interp.report.plots import pyplot, save

        out_dir = Path(out_dir)
        out = summarize_scalars(results, ("n_circles", "signal_concentration", "train_loss"))
        out["headline"], out["fittest"], figures = {}, {}, []
        for run, steps in by_run_step(results).items():
            first, last = steps[min(steps)], steps[max(steps)]
            by_seed = {r.seed: r for r in first}
            pairs = [(by_seed[r.seed], r) for r in last
                     if r.seed in by_seed]
            alive = np.concatenate([end.surviving for _, end in pairs])
            fit = {"auroc_initial_signal": auroc(np.concatenate([a.arrays["signal"] for a, _ in pairs]), alive),
                   "auroc_initial_grad": auroc(np.concatenate([a.arrays["grad_signal"] for a, _ in pairs]), alive),
                   "survivors": {str(end.seed): end.scalars["circles"]
                                 for _, end in pairs}}
            out["fittest"][run] = fit
            out["headline"][f"{run} circles at step {max(steps)} (per seed)"] = [r.scalars["n_circles"] for r in last]
            out["headline"][f"{run} AUROC of survival from step-{min(steps)} signal / gradient"] = (
                round(fit["auroc_initial_signal"], 3), round(fit["auroc_initial_grad"], 3))
            plt = pyplot()
            fig, axes = plt.subplots(1, len(last), figsize=(4.5 * len(last), 3.5), squeeze=False)
            for ax, end in zip(axes[0], last):
                seed = end.seed
                xs = [max(st, 1) for st in steps]
                traj = np.stack([next(r for r in steps[st] if r.seed == seed)
                                 .arrays["signal"] for st in steps])                   # [step, frequency]
                for k in range(traj.shape[1]):
                    live = end.surviving[k]
                    ax.plot(xs, traj[:, k], color=None if live else "0.75", lw=1.8 if live else 0.7,
                            label=f"k={k + 1}" if live else None, zorder=3 if live else 1)
                ax.set_xscale("log")
                ax.set_xlabel("training step (step 0 drawn at 1)")
                ax.set_ylabel("embedding signal s_k")
                ax.set_title(f"{run} seed {seed}: survivors coloured")
                ax.legend(fontsize=7)
            figures.append(save(fig, out_dir / f"signal_{run}.png"))
        out["figures"] = [str(f) for f in figures]
        return out
