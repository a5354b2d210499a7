"""``neuron-roles``: prediction, suppression, partition, entropy and attention-deactivation neurons, read from the
weights (Gurnee et al., arXiv 2401.12181, section 5).

Weights only, plus the mean key at position 0 of every later layer (the one cached activation). The method, the
thresholds that are ours and the caveats: ``method.md`` beside this module; the numerics: ``roles.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.analyzers.neuron_roles import roles as R
from interp.checkpoints.hooks import act_name
from interp.config import Options, option
from interp.results import Result
from interp.runner.context import Needs

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch

    from interp.checkpoints.manifest import CheckpointRef
    from interp.runner.context import Context

ROLES = R.ROLES
# [layer, neuron] float statistics, in this order in the result
STATS = ("vocab_mean", "vocab_var", "vocab_skew", "vocab_kurtosis", "var_ratio", "bimodality", "w_out_norm",
         "null_share", "deact_score", "deact_z")


@dataclass(frozen=True)
class NeuronRolesConfig(Options):
    # prediction / suppression: kurtosis of v over the vocabulary above this (Gurnee et al.'s split), and skew
    # beyond +-skew_min (ours: 0 is the paper's sign-only rule)
    kurtosis_min: float = option(10.0, gt=0)
    skew_min: float = option(1.0, ge=0)
    # ours: prediction / suppression also need var_ratio above this, a vocabulary effect that exists at all (in a
    # direction W_U does not read, v is float32 rounding and its shape means nothing)
    min_var_ratio: float = option(0.01, ge=0)
    # partition (ours): vocabulary variance above partition_var_ratio x that of a random direction of the same norm,
    # bimodality coefficient above partition_bimodality (5/9: a uniform's), and kurtosis not above kurtosis_min
    partition_var_ratio: float = option(2.0, gt=0)
    partition_bimodality: float = option(5 / 9, gt=0, le=1)
    # entropy (ours): share of |w_out|^2 in the null_dims weakest directions of W_U above null_share_min, and
    # |w_out| at or above this percentile of its layer
    null_dims: int = option(10, ge=1)
    null_share_min: float = option(0.5, gt=0, lt=1)
    entropy_norm_percentile: float = option(90.0, ge=0, le=100)
    # attention deactivation (ours): top head's score at least deact_z_min x the RMS of that head's scores over
    # the layer's other neurons
    deact_z_min: float = option(5.0, gt=0)
    top_neurons: int = option(5, ge=1)        # records kept per role and layer
    top_tokens: int = option(10, ge=1)        # promoted / suppressed tokens per record
    block_entries: int = option(1 << 24, ge=1)   # entries of v (neuron x vocabulary, float64) held at once
    chunk_tokens: int = option(16384, ge=1)   # key vectors per block read from the cache (bounds memory)


class NeuronRolesResult(Result):
    # flags compare floats with thresholds, and the top head is an argmax: either may flip where the compared
    # values lie within rounding of each other (another thread count)
    TIES = ("is_*", "deact_layer", "deact_head")

    def stat(self, name: str) -> np.ndarray:
        """[layer, neuron] array of one statistic (see STATS)."""
        return self.arrays[name]

    def flags(self, role: str) -> np.ndarray:
        """[layer, neuron] bool: which neurons have ``role`` (one of ROLES)."""
        return self.arrays[f"is_{role}"]

    def records(self, role: str) -> list[dict[str, Any]]:
        """The top neurons of ``role`` per layer: {layer, neuron, score, promoted, suppressed, ...}."""
        return list(self.scalars.get(role, []))


class NeuronRoles(Analyzer):
    name = "neuron-roles"
    Config = NeuronRolesConfig
    Result = NeuronRolesResult
    question = ("Which MLP neurons predict or suppress a set of tokens, split the vocabulary in two, regulate the "
                "output entropy, or switch off a later attention head, judged from their weights?")

    def needs(self, ref: CheckpointRef) -> Needs:
        # a neuron of layer l writes to the queries of layers > l only, so layer 0's keys are never read
        return Needs(hooks=tuple(act_name("k", layer) for layer in range(1, ref.n_layers)))

    def run(self, unit: Unit, ctx: Context) -> NeuronRolesResult:
        from interp.maths.weights import processing_record, unembed

        (ref,) = unit.refs
        model = ctx.model(ref)
        w_u = unembed(model)                                                  # [d_model, vocab], float64
        stats, spectrum, null_k = self._statistics(model, w_u, first_keys(ctx, ref, self.config.chunk_tokens))
        flags = R.classify(stats, self.config)
        if getattr(model.cfg, "normalization_type", None) is None:
            flags["entropy"][:] = False   # no final norm to rescale: writing into W_U's null space does nothing
        result = self.new_result(unit)
        for k in STATS:
            result.add(k, stats[k], ("layer", "neuron"))
        result.add("deact_layer", stats["deact_layer"], ("layer", "neuron"))
        result.add("deact_head", stats["deact_head"], ("layer", "neuron"))
        for role in ROLES:
            result.add(f"is_{role}", flags[role], ("layer", "neuron"))
        result.add("unembed_singular", spectrum, ("direction",))
        decode, tokenizer = token_decoder(ref, ctx.source(ref).tokenizer)
        counts = {role: [int(c) for c in flags[role].sum(1)] for role in ROLES}
        result.scalars.update(weight_processing=processing_record(model), null_dims=null_k,
                              read_dims=int(len(spectrum)), tokenizer=tokenizer, counts=counts,
                              **{f"n_{role}": int(sum(c)) for role, c in counts.items()})
        for role in ROLES:
            result.scalars[role] = self._records(model, w_u, role, flags[role], stats, decode)
        return result

    def _statistics(self, model, w_u: torch.Tensor, k_first: dict[int, torch.Tensor]
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
        """Every [layer, neuron] statistic, the unembedding's singular values, and the null dimensions used."""
        import torch

        from interp.maths.weights import mlp_out

        cfg, n_layers = self.config, model.cfg.n_layers
        space = R.read_space(model)
        s, dirs, trace = R.unembed_spectrum(w_u, space)
        null_k = min(cfg.null_dims, max(1, len(s) - 1))                       # never the whole read space
        null = dirs[:, -null_k:]                                              # [d_model, k] weakest directions
        qdirs, pairs = R.query_directions(model, k_first)
        per: dict[str, list] = {k: [] for k in (*STATS, "deact_layer", "deact_head")}
        for layer in range(n_layers):
            w_out = mlp_out(model, layer)                                     # [neuron, d_model]
            mom = R.vocab_moments(w_out, w_u, cfg.block_entries)
            norm2 = (w_out**2).sum(1)
            share = torch.where(norm2 > 0, ((w_out @ null) ** 2).sum(1) / norm2.clamp_min(1e-300), 0.0)
            # vocabulary variance over what a random unit direction of the read space would give
            ratio = mom["var"] * w_u.shape[1] * len(s) / (norm2 * trace).clamp_min(1e-300)
            for k, v in (("vocab_mean", mom["mean"]), ("vocab_var", mom["var"]), ("vocab_skew", mom["skew"]),
                         ("vocab_kurtosis", mom["kurtosis"]), ("var_ratio", ratio), ("w_out_norm", norm2.sqrt()),
                         ("null_share", share)):
                per[k].append(v.cpu().numpy())
            deact = R.deactivation(w_out, qdirs, pairs, layer)
            for k in ("score", "z", "layer", "head"):
                per[f"deact_{k}"].append(deact[k])
        out = {k: np.stack(v) for k, v in per.items() if v}
        out["bimodality"] = R.bimodality(out["vocab_skew"], out["vocab_kurtosis"])
        return out, s.cpu().numpy(), null_k

    def _records(self, model, w_u: torch.Tensor, role: str, flag: np.ndarray, stats: dict[str, np.ndarray],
                 decode: Callable[[int], str] | None) -> list[dict[str, Any]]:
        """The top neurons of ``role`` in each layer, with the tokens their vocabulary effect raises and lowers."""
        from interp.maths.weights import mlp_out

        out = []
        for layer in range(flag.shape[0]):
            chosen = R.top_neurons(flag[layer], stats[R.RANK_BY[role]][layer], self.config.top_neurons)
            if not chosen:
                continue
            effects = (mlp_out(model, layer)[chosen] @ w_u).cpu().numpy()    # [chosen, vocab]
            for n, v in zip(chosen, effects):
                up, down = R.top_tokens(v, self.config.top_tokens)
                rec = {"layer": layer, "neuron": n, "score": float(stats[R.RANK_BY[role]][layer, n]),
                       "promoted": up, "suppressed": down}
                if role == "deactivation":
                    rec["head"] = [int(stats["deact_layer"][layer, n]), int(stats["deact_head"][layer, n])]
                if decode is not None:
                    rec["promoted_text"], rec["suppressed_text"] = [decode(i) for i in up], [decode(i) for i in down]
                out.append(rec)
        return out


def first_keys(ctx: Context, ref: CheckpointRef, chunk_tokens: int) -> dict[int, torch.Tensor]:
    """{layer: [head, d_head]} the mean over prompts of the key at position 0 (float64), for layers 1 and up.
    Grouped-query models store fewer key heads; each is repeated for the query heads that share it."""
    import torch

    model = ctx.model(ref)
    out = {}
    for layer in range(1, ref.n_layers):
        arr = ctx.acts(ref, act_name("k", layer))                     # [prompt, pos, key head, d_head]
        total, n = 0.0, 0
        for block in arr.chunks(chunk_tokens):
            total, n = total + block[:, 0].astype(np.float64).sum(0), n + len(block)
        k = torch.from_numpy(np.asarray(total / max(n, 1))).to(model.W_U.device)
        out[layer] = k.repeat_interleave(model.cfg.n_heads // k.shape[0], dim=0)
    return out


def token_decoder(ref: CheckpointRef, explicit: Path | None = None) -> tuple[Callable[[int], str] | None, str | None]:
    """(id -> text, the tokenizer file's name) from ``explicit`` (``--tokenizer``) or a ``tokenizer.json`` or nanoGPT
    ``meta.pkl`` beside the checkpoint; (None, None) when there is none or it cannot be read (ids only then)."""
    from interp.errors import ConfigError, UnsafeInputError
    from interp.prompts.text import find_tokenizer

    try:
        path = find_tokenizer(ref.path, ref.format, explicit)
        if path.suffix == ".pkl":
            from interp.checkpoints.formats.nanogpt import read_meta

            itos = read_meta(path).get("itos") or {}
            return (lambda i: str(itos.get(i, ""))), path.name
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
    except ConfigError:          # no tokenizer beside the checkpoint: ids only
        return None, None
    except UnsafeInputError:     # a meta.pkl that names code is refused loudly, not read around
        raise
    except Exception:   # an unreadable file (the tokenizers package raises its own exception type): ids only
        return None, None
    return (lambda i: tok.decode([i])), path.name
