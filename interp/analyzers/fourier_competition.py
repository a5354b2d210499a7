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
    question = ("Which Fourier circles of a modular-addition embedding survive training, and were they the fittest "
                "at the start?")
    method = ("Per checkpoint of a run with a modular-addition task: the embedding's signal at every frequency k, "
              "s_k = ||FFT over operand ranks of W_E at k||, and the same spectrum of the training loss's gradient "
              "with respect to those embedding rows; frequency k survives when s_k exceeds twice the mean, and "
              "circles count surviving pairs (k, p - k), as in Ding et al. (arXiv 2405.17420). Across the series, "
              "the AUROC of survival at the last step from each frequency's signal (and gradient) at the first "
              "checkpoint, pooled over seeds, says whether the fittest survived.\n\n"
              "Caveats: the paper's linear dynamics fit needs every step, not a log-spaced series; it lives in "
              "analyses/fourier_competition.py. Here the model is a transformer, not the paper's MLP, so the "
              "embedding also feeds attention.")

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
        from interp.report import headline as H
        from interp.report.figures import Lines, per_run_lines

        out = summarize_scalars(results, ("n_circles", "signal_concentration", "train_loss"))
        out["headline"], out["fittest"], figures = [], {}, []
        for run, steps in by_run_step(results).items():
            first, last = steps[min(steps)], steps[max(steps)]
            by_seed = {r.seed: r for r in first}
            pairs = [(by_seed[r.seed], r) for r in last if r.seed in by_seed]
            alive = np.concatenate([end.surviving for _, end in pairs])
            fit = {"auroc_initial_signal": auroc(np.concatenate([a.arrays["signal"] for a, _ in pairs]), alive),
                   "auroc_initial_grad": auroc(np.concatenate([a.arrays["grad_signal"] for a, _ in pairs]), alive),
                   "survivors": {str(end.seed): end.scalars["circles"] for _, end in pairs}}
            out["fittest"][run] = fit
            pooled = f"pooled over {len(pairs)} seeds; 0.5 is chance"
            out["headline"] += [
                H.seeds(run, f"circles at step {max(steps)}", {r.seed: r.scalars["n_circles"] for r in last}, 2),
                H.single(run, f"AUROC of survival from the step-{min(steps)} signal", fit["auroc_initial_signal"], 3,
                         pooled),
                H.single(run, f"AUROC of survival from the step-{min(steps)} gradient", fit["auroc_initial_grad"], 3,
                         pooled)]
            figures.append(signal_figure(run, steps))
        figures.append(Lines("n_circles", "Surviving Fourier circles over training", y_label="circles",
                             lines=per_run_lines(out["per_run"], "n_circles"),
                             caption="The number of circles (frequency pairs k, p - k) whose embedding signal exceeds "
                                     "twice the mean over frequencies. Thin lines are single seeds, the thick line "
                                     "their mean; colour is the run. Ding et al. (arXiv 2405.17420) find that few "
                                     "circles survive, and more with a wider embedding."))
        out["figures"] = [f.to_json() for f in figures]
        return out


def signal_figure(run: str, steps: dict) -> "Lines":
    """Per seed, the signal of every frequency over steps: survivors at the last step coloured, the rest grey."""
    from interp.report.figures import Line, Lines

    last = steps[max(steps)]
    lines = []
    for end in last:
        traj = np.stack([next(r for r in steps[st] if r.seed == end.seed).arrays["signal"] for st in steps])
        for k in range(traj.shape[1]):
            live = bool(end.surviving[k])
            lines.append(Line(list(steps), traj[:, k].tolist(), f"k={k + 1}" if live else "did not survive",
                              f"seed {end.seed}", label=f"k={k + 1}", faint=not live))
    return Lines(f"signal_{run}", f"{run}: embedding signal of every Fourier frequency over training, one panel per "
                 f"seed", y_label="embedding signal s_k", lines=lines, group_title="frequency",
                 caption="s_k is the norm of the embedding's Fourier transform over the operand ranks at frequency k. "
                         "Frequencies that survive at the last step (s_k above twice the mean) are coloured, the "
                         "rest grey. Ding et al. (arXiv 2405.17420) find that the survivors are the 'fittest': the "
                         "frequencies with the strongest signal and gradient at the start; the AUROC headline measures "
                         "that here.")
