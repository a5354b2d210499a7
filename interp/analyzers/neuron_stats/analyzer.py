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
    chunk_tokens: int = option(16384, ge=1)   # token vectors per block read from the cache (bounds memory)
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
    version = 3   # text's first positions and special tokens left out; weights read with the norms folded in
    question = ("What do the MLP neurons look like: how heavy-tailed and how often active are their "
                "pre-activations, and how are their weights shaped?")

    def needs(self, ref) -> Needs:
        return Needs(hooks=mlp_hooks(ref.n_layers, "pre"))

    def run(self, unit: Unit, ctx) -> NeuronStatsResult:
        import torch

        (ref,) = unit.refs
        model = ctx.model(ref)
        n_layers, d_mlp = model.cfg.n_layers, model.cfg.d_mlp
        prompts, c = ctx.prompts(ref), self.config
        result = self.new_result(unit)
        per_layer = {k: [] for k in STATS}
        label = prompts.label_positions() if c.positions == "label" else None
        for layer in range(n_layers):
            acc = RunningMoments(d_mlp, c.active_threshold, device=ctx.device)
            acts = ctx.acts(ref, act_name("pre", layer))
            start = 0
            for chunk in acts.blocks(acts.rows_for(c.chunk_tokens)):
                rows = slice(start, start + len(chunk))
                start += len(chunk)
                x = torch.from_numpy(chunk).to(ctx.device)  # [prompt, pos, neuron]
                if label is not None:
                    pos = np.maximum(label[rows], 0)
                    x = x[torch.arange(len(chunk)), torch.as_tensor(pos)]
                else:
                    keep = prompts.statistics_mask(np.asarray(prompts.tokens[rows]), c.keep_first_position,
                                                   c.keep_special_tokens)
                    x = x.reshape(-1, d_mlp) if keep.all() else x[torch.from_numpy(keep)]
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
                              mean_act_freq=float(freq.mean()), dead_fraction=float((freq == 0).mean()),
                              weight_processing=processing_record(model))
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


