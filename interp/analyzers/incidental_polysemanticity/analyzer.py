"""``incidental-polysemanticity``: how many task features each MLP neuron carries, against the toy model's n^2/(4m)
(Lecomte et al., arXiv 2312.03096; the toy itself is ``interp.toys.incidental``).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.config import Options
from interp.errors import ConfigError, PromptError
from interp.results import Result
from interp.runner.context import Needs


@dataclass(frozen=True)
class IncidentalPolysemanticityConfig(Options):
    band: tuple[float, float] = (0.8, 1.2)   # relative weight band in which a neuron carries a feature (the paper's)
    center: bool = True                      # centre the features' embedding rows on their mean first
    # a task's features: its operand tokens (what its prompts feed the model), or those and its answer tokens (which
    # a toy task never feeds the model: their embedding rows are untrained there)
    features: Literal["operands", "operands+answers"] = "operands"

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.band
        if not 0 < lo <= 1 <= hi:
            raise ConfigError(f"{self._where('band')} = {list(self.band)}: needs 0 < low <= 1 <= high (a feature's "
                              f"own strongest weight is 1 on the relative scale), e.g. [0.8, 1.2]")


class IncidentalPolysemanticityResult(Result):
    @property
    def features_per_neuron(self) -> np.ndarray:
        """[layer, neuron] features carried by each neuron."""
        return self.arrays["features_per_neuron"]


def feature_tokens(tasks, answers: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(tokens [feature], task index [feature], task names): every task's operand tokens (and, with ``answers``, its
    answer tokens), in task order, each token once (a token two tasks share belongs to the first)."""
    seen: dict[int, int] = {}
    for i, name in enumerate(tasks.names):
        for tok in (*tasks.operands.get(name, ()), *(tasks.answers.get(name, ()) if answers else ())):
            seen.setdefault(int(tok), i)
    return (np.fromiter(seen, dtype=np.int64, count=len(seen)), np.fromiter(seen.values(), dtype=np.int64,
                                                                           count=len(seen)), list(tasks.names))


def direct_weights(w_e: np.ndarray, w_in: np.ndarray, center: bool = True) -> np.ndarray:
    """[feature, layer, neuron] float64: ``w_e`` [feature, d_model] (the features' embedding rows) through each
    layer's ``w_in`` [layer, d_model, neuron]."""
    e = w_e.astype(np.float64)
    if center:
        e = e - e.mean(0, keepdims=True)
    return np.einsum("fd,ldn->fln", e, w_in.astype(np.float64))


def relative_weights(weight: np.ndarray) -> np.ndarray:
    """|weight| / (each feature's largest |weight| over all units), same shape; a feature with no weight at all
    gets 0 everywhere (it carries nothing)."""
    a = np.abs(weight)
    top = a.reshape(len(a), -1).max(1).reshape((-1,) + (1,) * (a.ndim - 1))
    return np.divide(a, top, out=np.zeros_like(a), where=top > 0)


def carried(relative: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """[feature, ...] bool: the neuron carries the feature (relative weight within the band)."""
    return (relative >= band[0]) & (relative <= band[1])


def baseline(n: int, m: int) -> float:
    """The toy's expected polysemantic neurons for n features and m neurons, n^2 / (4m) (arXiv 2312.03096)."""
    return n * n / (4 * m)


class IncidentalPolysemanticity(Analyzer):
    name = "incidental-polysemanticity"
    Config = IncidentalPolysemanticityConfig
    Result = IncidentalPolysemanticityResult
    version = 2   # tasks from any source; weights read with the norms folded in (interp.maths.weights)
    inputs = ("tasks",)
    requires = "tasks (their operand tokens are the features): a task mixture, or a task file (--tasks)"
    question = ("How many of the tasks' token features does each MLP neuron carry over training, and is that more "
                "than the chance collisions of the incidental-polysemanticity toy model, n²/(4m)?")

    def needs(self, ref) -> Needs:
        return Needs()

    def run(self, unit: Unit, ctx) -> IncidentalPolysemanticityResult:
        from interp.maths import weights

        (ref,) = unit.refs
        model = ctx.model(ref)
        tasks = ctx.tasks(ref)
        tokens, owner, names = feature_tokens(tasks, answers=self.config.features == "operands+answers")
        if not len(tokens):
            raise PromptError(f"{tasks.source}: no operand tokens to read as features (give each item of a task file "
                              f"an 'operands' list, or prompts whose tokens vary between items)")
        w_e = weights.embed(model)[tokens].cpu().numpy()                             # [feature, d_model]
        w_in = np.stack([weights.mlp_in(model, layer).cpu().numpy()
                         for layer in range(model.cfg.n_layers)])                    # [layer, d_model, neuron]
        weight = direct_weights(w_e, w_in, self.config.center)                       # [feature, layer, neuron]
        rel = relative_weights(weight)
        fpn = carried(rel, self.config.band).sum(0)                                  # [layer, neuron]
        n, m = len(tokens), int(fpn.size)
        poly = int((fpn > 1).sum())
        result = self.new_result(unit)
        result.add("weight", weight.astype(np.float32), ("feature", "layer", "neuron"))   # relative: recomputable
        result.add("features_per_neuron", fpn.astype(np.int64), ("layer", "neuron"))
        result.add("feature_tokens", tokens, ("feature",))
        result.add("feature_task", owner, ("feature",))
        result.scalars.update(
            tasks=names, n_features=n, n_neurons=m, n_polysemantic=poly, fraction_polysemantic=poly / m,
            mean_features_per_neuron=float(fpn.mean()), neurons_per_feature=float(fpn.sum() / n),
            features_per_neuron_hist=np.bincount(fpn.ravel(), minlength=n + 1).tolist(),
            baseline=baseline(n, m), baseline_fraction=baseline(n, m) / m, baseline_applies=m >= n,
            band=list(self.config.band), task_source=tasks.source,
            weight_processing=weights.processing_record(model))
        return result
