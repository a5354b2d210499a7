"""``neuron-stats``: per MLP neuron, activation moments and weight geometry (Gurnee et al., arXiv 2401.12181).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.checkpoints.hooks import act_name
from interp.config import Options
from interp.maths import weights
from interp.maths.stats import RunningMoments
from interp.maths.weights import processing_record
from interp.results import Result
from interp.runner.context import Needs

if TYPE_CHECKING:
    import torch

STATS = ("mean", "var", "skew", "kurtosis", "act_freq")
WEIGHT_STATS = ("w_in_norm", "w_out_norm", "cos_in_out", "vocab_cos_mean", "vocab_cos_var", "vocab_cos_skew",
                "vocab_cos_kurtosis")


@dataclass(frozen=True)
class NeuronStatsConfig(Options):
    positions: Literal["all", "label"] = "all"   # every position, or each prompt's label position (task prompts)
    active_threshold: float = 0.0   # on the pre-activation; 0 is where ReLU/GELU neurons switch on
    # over text, a window's first position and special tokens are left out, as Gurnee et al. filtered them: their
    # activations are outliers shared by every seed
    keep_first_position: bool = False
    keep_special_tokens: bool = False


class NeuronStatsResult(Result):
    def stat(self, name: str) -> np.ndarray:
        """[layer, neuron] array of one statistic (see STATS and WEIGHT_STATS)."""
        return self.arrays[name]


class NeuronStats(Analyzer):
    name = "neuron-stats"
    Config = NeuronStatsConfig
    Result = NeuronStatsResult
    # 4: streamed from the forward pass (its own, or universal-neurons' lockstep pass over the seeds), never cached
    version = 4
    taps = "universal-neurons"   # runs inside that analyzer's forward pass when both run on a seed group
    question = ("What do the MLP neurons look like: how heavy-tailed and how often active are their "
                "pre-activations, and how are their weights shaped?")

    def needs(self, ref) -> Needs:
        return Needs()   # nothing cached: the pre-activations are consumed as the forward pass makes them

    def own_work(self, refs, tokens: int, params: int, tapped: bool = False) -> tuple[float, int]:
        return (0.0 if tapped else 2.0 * params * tokens), 4 * params   # a tap rides universal-neurons' pass

    def run(self, unit: Unit, ctx) -> NeuronStatsResult:
        from interp.activations.lockstep import stream

        (ref,) = unit.refs
        model, prompts = ctx.model(ref), ctx.prompts(ref)
        tap = self.tap(ref, model, prompts, ctx.device)
        for part, acts in stream({0: model}, prompts, ctx.batch_rows(prompts), {0: tap.hooks}, ctx.device):
            tap.update(part, {h: a for (_, h), a in acts.items()})
        return tap.result(self.new_result(unit))

    def tap(self, ref, model, prompts, device: str) -> MomentsTap:
        """The accumulators of one checkpoint, to be fed its pre-activations a batch at a time."""
        return MomentsTap(self.config, model, prompts, device)


class MomentsTap:
    """neuron-stats' float64 moments of every MLP neuron's pre-activation for one checkpoint, fed [prompt, pos,
    neuron] batches (``update``) by whichever forward pass runs; the weight statistics are taken at once, while the
    model is at hand."""

    def __init__(self, config: NeuronStatsConfig, model, prompts, device: str):
        n_layers, d_mlp = model.cfg.n_layers, model.cfg.d_mlp
        self.config, self.prompts, self.device = config, prompts, device
        self.hooks = {act_name("pre", layer) for layer in range(n_layers)}
        self.acc = [RunningMoments(d_mlp, config.active_threshold, device=device) for _ in range(n_layers)]
        self.label = prompts.label_positions() if config.positions == "label" else None
        self.weights, self.processing = weight_stats(model), processing_record(model)
        self.fed = False

    def update(self, rows: slice, acts: dict) -> None:
        import torch

        from interp.activations.lockstep import masked

        c = self.config
        keep = None if self.label is not None else self.prompts.statistics_mask(
            np.asarray(self.prompts.tokens[rows]), c.keep_first_position, c.keep_special_tokens)
        for layer, acc in enumerate(self.acc):
            x = acts[act_name("pre", layer)]                                         # [prompt, pos, neuron]
            if self.label is not None:
                pos = torch.as_tensor(np.maximum(self.label[rows], 0), device=x.device)
                acc.update(x[torch.arange(len(x), device=x.device), pos])
            else:
                acc.update(masked(x, keep))
        self.fed = True

    def result(self, result: Result) -> Result:
        import torch

        stats = [a.result() for a in self.acc]
        for k in STATS:
            result.add(k, torch.stack([s[k] for s in stats]), ("layer", "neuron"))
        for k, v in self.weights.items():
            result.add(k, v, ("layer", "neuron"))
        kurt, freq = result.arrays["kurtosis"], result.arrays["act_freq"]
        result.scalars.update(n_tokens=int(self.acc[0].n), median_kurtosis=float(np.median(kurt)),
                              mean_act_freq=float(freq.mean()), dead_fraction=float((freq == 0).mean()),
                              weight_processing=self.processing)
        return result


def weight_stats(model) -> dict[str, torch.Tensor]:
    """[layer, neuron] weight statistics, in float64, on the weights as the papers read them: the final norm folded
    into W_U and W_U centred over the vocabulary, the pre-MLP norm folded into W_in, W_out centred for LayerNorm
    models (``interp.maths.weights``), whatever processing the model was loaded with."""
    import torch

    out: dict[str, list] = {k: [] for k in WEIGHT_STATS}
    w_u = weights.unembed(model)                                         # [d_model, vocab]
    w_u = w_u / w_u.norm(dim=0, keepdim=True).clamp_min(1e-30)
    for layer in range(model.cfg.n_layers):
        w_in = weights.mlp_in(model, layer)                              # [d_model, neuron]
        w_out = weights.mlp_out(model, layer)                            # [neuron, d_model]
        n_in, n_out = w_in.norm(dim=0), w_out.norm(dim=1)
        out["w_in_norm"].append(n_in)
        out["w_out_norm"].append(n_out)
        out["cos_in_out"].append((w_in.T * w_out).sum(1) / (n_in * n_out).clamp_min(1e-30))
        cos = (w_out / n_out[:, None].clamp_min(1e-30)) @ w_u           # [neuron, vocab]
        mu = cos.mean(1, keepdim=True)
        d = cos - mu
        var = (d**2).mean(1)
        safe = torch.where(var > 0, var, torch.ones_like(var))
        out["vocab_cos_mean"].append(mu[:, 0])
        out["vocab_cos_var"].append(var)
        out["vocab_cos_skew"].append(torch.where(var > 0, (d**3).mean(1) / safe**1.5, torch.zeros_like(var)))
        out["vocab_cos_kurtosis"].append(torch.where(var > 0, (d**4).mean(1) / safe**2, torch.zeros_like(var)))
    return {k: torch.stack(v) for k, v in out.items()}


