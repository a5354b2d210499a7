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
    version = 2   # modular concepts of a concepts file too; the reference code's circle count beside ours
    inputs = ("concepts",)
    requires = ("a modular concept: a run with a modular_addition task, or a concepts file (--concepts) whose "
                "values are single tokens")
    question = ("Which Fourier circles of a modular-addition embedding survive training, and were they the fittest "
                "at the start?")

    def needs(self, ref) -> Needs:
        return Needs()

    @deterministic()   # bit-reproducible backward passes (the embedding's scatter-add)
    def run(self, unit: Unit, ctx) -> FourierCompetitionResult:
        from interp.maths.manifolds import embedding_spectrum, reference_circles, surviving

        (ref,) = unit.refs
        model, cs = ctx.model(ref), ctx.concepts(ref)
        name = cs.names[0]
        ops, grad, loss = self._embedding_rows(ref, cs, name, model)
        w_e = model.W_E.detach().double().cpu().numpy()[ops]                       # [p, d_model] by value
        s = embedding_spectrum(w_e)
        g = embedding_spectrum(grad[ops]) if grad is not None else np.full_like(s, np.nan)
        alive = surviving(s, self.config.survive_factor)
        result = self.new_result(unit)
        result.add("signal", s, ("frequency",))
        result.add("grad_signal", g, ("frequency",))
        result.add("surviving", alive, ("frequency",))
        result.scalars.update(p=len(ops), n_circles=int(alive.sum()), concept=name, concept_source=cs.source,
                              n_circles_reference=reference_circles(w_e, self.config.survive_factor),
                              circles=[int(k) + 1 for k in np.flatnonzero(alive)],
                              train_loss=loss, signal_concentration=float(np.sort(s)[-3:].sum() / s.sum()))
        return result

    @staticmethod
    def _embedding_rows(ref, cs, name: str, model) -> tuple[np.ndarray, np.ndarray | None, float | None]:
        """(token of each value, ordered by value; the training loss's gradient on W_E [vocab, d] where known, and
        the loss). A toy modular task: its operands by rank, and the gradient of its train split's loss. A concepts
        file: the token at each value's position, which must be the same on every prompt of that value."""
        import torch

        from interp.maths.losses import summed_loss
        from interp.toys.tasks import build_tasks, find_task

        if cs.operands is not None and name in cs.operands:
            spec = ref.mixture_spec
            task = build_tasks(spec)[find_task(spec, "modular_addition").name]
            train = task.prompt_set("train", tuple(t.name for t in spec.tasks))
            with torch.enable_grad():
                loss = summed_loss(model, train.tokens, train.loss_mask) / max(1, int(train.loss_mask.sum()))
                (grad,) = torch.autograd.grad(loss, [model.W_E])
            return np.asarray(cs.operands[name]), grad.double().cpu().numpy(), float(loss.detach())
        rows = cs.rows(name)
        period = int(cs.period[rows][0])
        tokens = np.asarray(cs.prompts.tokens)[rows, cs.position[rows]]
        by_value: dict[int, set[int]] = {}
        for v, tok in zip(cs.value[rows].tolist(), tokens.tolist()):
            by_value.setdefault(v, set()).add(tok)
        if sorted(by_value) != list(range(period)) or any(len(s) != 1 for s in by_value.values()):
            from interp.errors import PromptError

            raise PromptError(f"concept {name!r} of {cs.source}: fourier-competition needs every value 0..{period - 1} "
                              f"present and read at one token each (e.g. 'at': 'Friday'), to order the embedding "
                              f"rows by value")
        return np.array([next(iter(by_value[v])) for v in range(period)]), None, None
