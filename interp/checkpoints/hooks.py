"""TransformerLens hook names, spelled in one place.

``act_name`` follows ``transformer_lens.utils.get_act_name`` (the tests check that they agree) without importing
TransformerLens, so planning which activations to cache costs nothing.
"""

from __future__ import annotations

import re

# short name -> (block-relative hook); the same aliases TransformerLens accepts
_BLOCK = {
    "pre": "mlp.hook_pre", "post": "mlp.hook_post", "mlp_pre": "mlp.hook_pre", "mlp_post": "mlp.hook_post",
    "resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out",
    "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v", "z": "attn.hook_z", "result": "attn.hook_result",
    "pattern": "attn.hook_pattern", "attn": "attn.hook_pattern", "attn_scores": "attn.hook_attn_scores",
}
_TOP = {"embed": "hook_embed", "pos_embed": "hook_pos_embed"}
_LAYER = re.compile(r"^blocks\.(\d+)\.")


def act_name(name: str, layer: int | None = None) -> str:
    """``act_name("post", 0) == "blocks.0.mlp.hook_post"``; ``act_name("embed") == "hook_embed"``."""
    if name in _TOP:
        return _TOP[name]
    if name not in _BLOCK:
        raise KeyError(f"unknown activation {name!r}; known: {sorted(_BLOCK) + sorted(_TOP)}")
    if layer is None:
        raise ValueError(f"activation {name!r} lives in a block: give its layer")
    return f"blocks.{layer}.{_BLOCK[name]}"


def mlp_hooks(n_layers: int, name: str = "post") -> tuple[str, ...]:
    """The MLP hook ``name`` ("pre" or "post") of every layer."""
    return tuple(act_name(name, layer) for layer in range(int(n_layers)))


def mlp_param(layer: int, name: str) -> str:
    """A block's MLP parameter name (``W_in``, ``b_in``, ``W_out``, ``b_out``) in a ``HookedTransformer``."""
    return f"blocks.{layer}.mlp.{name}"


def hook_layer(hook: str) -> int | None:
    """The block a hook belongs to, or None for hooks outside the blocks (embeddings, final norm)."""
    m = _LAYER.match(hook)
    return int(m.group(1)) if m else None


def is_mlp_activation(hook: str) -> bool:
    """Whether a hook holds MLP neuron activations ([..., neuron])."""
    return hook.endswith((".mlp.hook_pre", ".mlp.hook_post"))
