"""``neuron-stats``: per MLP neuron, activation moments and weight geometry (Gurnee et al., arXiv 2401.12181).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.checkpoints.hooks import act_name, mlp_hooks
from interp.config import Options, option
from interp.maths.stats import RunningMoments
from interp.results import Result
from interp.runner.context import Needs
from interp.toys.tasks import LABEL_POS

if TYPE_CHECKING:
    import torch

STATS = ("mean", "var", "skew", "kurtosis", "act_freq")
WEIGHT_STATS = ("w_in_norm", "w_out_norm", "cos_in_out", "vocab_cos_mean", "vocab_cos_var", "vocab_cos_skew",
                "vocab_cos_kurtosis")


@dataclass(frozen=True)
class NeuronStatsConfig(Options):
    positions: Literal["all", "label"] = "all"   # every token position, or only the one that predicts LABEL
    active_threshold: float = 0.0   # on the pre-activation; 0 is where ReLU/GELU neurons switch on
    chunk_tokens: int = option(16384, ge=1)   # token vectors per block read from the cache (bounds memory)


class NeuronStatsResult(Result):
    def stat(self, name: str) -> np.ndarray:
        """[layer, neuron] array of one statistic (see STATS and WEIGHT_STATS)."""
        return self.arrays[name]


class NeuronStats(Analyzer):
    name = "neuron-stats"
    Config = NeuronStatsConfig
    Result = NeuronStatsResult
    version = 2
    question = ("What do the MLP neurons look like: how heavy-tailed and how often active are their "
                "pre-activations, and how are their weights shaped?")

    def needs(self, ref) -> Needs:
        return Needs(hooks=mlp_hooks(ref.n_layers, "pre"))

    def run(self, unit: Unit, ctx) -> NeuronStatsResult:
        import torch

        (ref,) = unit.refs
        model = ctx.model(ref)
        n_layers, d_mlp = model.cfg.n_layers, model.cfg.d_mlp
        result = self.new_result(unit)
        per_layer = {k: [] for k in STATS}
        for layer in range(n_layers):
            acc = RunningMoments(d_mlp, self.config.active_threshold, device=ctx.device)
            for chunk in ctx.acts(ref, act_name("pre", layer)).chunks(self.config.chunk_tokens):
                x = torch.from_numpy(chunk).to(ctx.device)  # [prompt, pos, neuron]
                x = x[:, LABEL_POS] if self.config.positions == "label" else x.reshape(-1, d_mlp)
                acc.update(x)
            for k, v in acc.result().items():
                per_layer[k].append(v)
            n_tokens = acc.n
        for k in STATS:
            result.add(k, torch.stack(per_layer[k]), ("layer", "neuron"))
        for k, v in weight_stats(model).items():
            result.add(k, v, ("layer", "neuron"))
        kurt, freq = result.arrays["kurtosis"], result.arrays["act_freq"]
        result.scalars.update(n_tokens=int(n_tokens), median_kurtosis=float(np.median(kurt)),
                              mean_act_freq=float(freq.mean()), dead_fraction=float((freq == 0).mean()))
        return result


def weight_stats(model) -> dict[str, torch.Tensor]:
    """[layer, neuron] weight statistics, in float64."""
    import torch

    out: dict[str, list] = {k: [] for k in WEIGHT_STATS}
    w_u = model.W_U.detach().double()                                    # [d_model, vocab]
    w_u = w_u / w_u.norm(dim=0, keepdim=True).clamp_min(1e-30)
    for layer in range(model.cfg.n_layers):
        w_in = model.blocks[layer].mlp.W_in.detach().double()           # [d_model, neuron]
        w_out = model.blocks[layer].mlp.W_out.detach().double()         # [neuron, d_model]
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


