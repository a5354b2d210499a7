"""``neuron-stats``: per MLP neuron, activation moments and weight geometry (shared/SCIENCE.md section 3).

Per checkpoint, layer and neuron:
- from ``blocks.{l}.mlp.hook_pre`` streamed over all prompt tokens: mean, variance, skew, kurtosis (non-excess:
  a Gaussian gives 3), activation frequency (fraction of tokens with pre-activation > ``active_threshold``);
- from the weights: ``|w_in|`` (column of W_in), ``|w_out|`` (row of W_out), ``cos(w_in, w_out)``, and the mean,
  variance, skew and kurtosis over the vocabulary of ``cos(w_out, W_U[:, v])``.
Constant neurons get variance 0 and skew = kurtosis = 0 (defined, not NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from interp.activations.stats import RunningMoments
from interp.analyzers.base import Analyzer, Needs, Scope, Unit
from interp.config import Options, option
from interp.hooks import act_name, mlp_hooks
from interp.results import Result
from interp.tasks import LABEL_POS

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
    description = "per-neuron pre-activation moments, activation frequency and weight geometry"
    Config = NeuronStatsConfig
    Result = NeuronStatsResult
    version = 2
    question = ("What do the MLP neurons look like: how heavy-tailed and how often active are their "
                "pre-activations, and how are their weights shaped?")
    method = ("Per checkpoint, every MLP neuron's pre-activation (blocks.L.mlp.hook_pre) is streamed over every "
              "token of the prompt set into float64 moments: mean, variance, skew and kurtosis (non-excess: a "
              "Gaussian gives 3), and the fraction of tokens where it exceeds active_threshold. Weight statistics "
              "come from the checkpoint itself: |w_in|, |w_out|, cos(w_in, w_out) and the moments of "
              "cos(w_out, W_U) over the vocabulary, the quantities Gurnee et al. (arXiv 2401.12181) record.\n\n"
              "Caveats: the prompts are the run's own task mixture (test splits and background sequences), so "
              "the moments describe these prompts, not natural text. A constant neuron gets skew and kurtosis 0 "
              "(defined, not NaN), which pulls the median kurtosis down when many neurons are dead.")

    def needs(self, ref) -> Needs:
        return Needs(hooks=mlp_hooks(ref.n_layers, "pre"), scope=Scope.CHECKPOINT)

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

    def summarize(self, results: list[Result], out_dir) -> dict:
        return summarize_series(results, out_dir)


def weight_stats(model) -> dict[str, "torch.Tensor"]:
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


def summarize_series(results: list[Result], out_dir) -> dict:
    """Per run and step (mean and spread over seeds): median kurtosis, activation frequency, dead fraction; figure
    specs of each over steps, and the last step's values as headline rows."""
    from interp.report import headline as H
    from interp.report.figures import Lines, per_run_lines
    from interp.report.series import summarize_scalars

    out = summarize_scalars(results, ("median_kurtosis", "mean_act_freq", "dead_fraction"))
    out["figures"] = [Lines(key, title, caption=caption, y_label=y_label,
                            lines=per_run_lines(out["per_run"], key)).to_json()
                      for key, title, y_label, caption in FIGURES]
    out["headline"] = []
    for run, d in out["per_run"].items():
        step = max(d, key=int)
        for key, label, digits in (("median_kurtosis", "median kurtosis of pre-activations", 3),
                                   ("dead_fraction", "fraction of never-active neurons", 3)):
            cell = d[step][key]
            out["headline"].append(H.seeds(run, f"{label}, step {step}", cell["per_seed"], digits, cell["mean"]))
    return out


_HOW = "Thin lines are single seeds, the thick line their mean; colour is the run."
FIGURES = (
    ("median_kurtosis", "Median kurtosis of MLP pre-activations over training", "median kurtosis (Gaussian: 3)",
     "The median over a run's MLP neurons of each neuron's pre-activation kurtosis over every prompt token. "
     f"{_HOW} A Gaussian pre-activation gives 3; a neuron that is quiet on most tokens and large on a few gives "
     "more. For comparison, Gurnee et al. (arXiv 2401.12181) find the universal neurons of GPT-2 heavy-tailed, "
     "with a median kurtosis of about 5.6, well above the other neurons."),
    ("mean_act_freq", "How often MLP neurons are active, over training", "mean activation frequency",
     "The mean over neurons of the fraction of tokens on which a neuron's pre-activation exceeds the threshold "
     f"(active_threshold, 0 by default: where ReLU switches on). {_HOW} Gurnee et al. (arXiv 2401.12181) find "
     "universal GPT-2 neurons sparse, active on about 2.5% of tokens."),
    ("dead_fraction", "Fraction of neurons never active, over training", "fraction of never-active neurons",
     "The fraction of a run's MLP neurons whose pre-activation never exceeds the threshold on any prompt token. "
     f"{_HOW} A dead neuron carries nothing and cannot be given to any task, so in a narrow model every dead "
     "neuron is capacity the tasks must compete for, the bottleneck Huang et al. (arXiv 2605.29548) blame for "
     "small models losing rare tasks."),
)
