"""``fourier-competition``: which Fourier circles of a modular-addition model survive training (Ding et al.,
"survival of the fittest", arXiv 2405.17420).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.config import Options, option
from interp.maths.determinism import deterministic
from interp.results import Result
from interp.runner.context import Needs


@dataclass(frozen=True)
class FourierCompetitionConfig(Options):
    survive_factor: float = option(2.0, gt=0)     # s_k > factor * mean(s) survives (the paper's rule)


class FourierCompetitionResult(Result):
    @property
    def surviving(self) -> np.ndarray:
        """[frequency] bool; frequency k at index k - 1."""
        return self.arrays["surviving"]


class FourierCompetition(Analyzer):
    name = "fourier-competition"
    Config = FourierCompetitionConfig
    Result = FourierCompetitionResult
    requires = "runs with a modular_addition task in their mixture (it reads the Fourier circles of its embedding)"
    question = ("Which Fourier circles of a modular-addition embedding survive training, and were they the fittest "
                "at the start?")

    def needs(self, ref) -> Needs:
        return Needs()

    def select(self, refs: list) -> list:
        from interp.toys.tasks import find_task

        return [r for r in refs if find_task(r.mixture_spec, "modular_addition") is not None]

    @deterministic()   # bit-reproducible backward passes (the embedding's scatter-add)
    def run(self, unit: Unit, ctx) -> FourierCompetitionResult:
        import torch

        from interp.maths.losses import summed_loss
        from interp.maths.manifolds import embedding_spectrum, surviving
        from interp.toys.tasks import build_tasks, find_task

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
                              train_loss=float(loss.detach()),
                              signal_concentration=float(np.sort(s)[-3:].sum() / s.sum()))
        return result


