"""Hugging Face model folders: ``config.json`` -> ``HookedTransformerConfig`` keyword arguments (JSON only: no torch,
no TransformerLens, so a manifest can plan hooks without loading a model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interp.errors import CheckpointError

HF_ARCHITECTURES = ("GPT2LMHeadModel", "GPTNeoXForCausalLM")


def hf_model_kwargs(folder: Path) -> dict[str, Any]:
    """``HookedTransformerConfig`` keyword arguments for a local Hugging Face folder, read from its config.json.

    Written here rather than taken from TransformerLens 3.9's ``convert_hf_model_config``, which reads GPT-2's
    ``n_ctx`` (gone from transformers 5 configs) and may fetch from the hub; this reads only the local file."""
    cfg_file = Path(folder) / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{folder}: no config.json; a Hugging Face checkpoint folder needs one")
    hf = json.loads(cfg_file.read_text())
    arch = (hf.get("architectures") or [None])[0]
    if arch not in HF_ARCHITECTURES:
        raise CheckpointError(f"{cfg_file}: architecture {arch!r} is not supported; supported: {HF_ARCHITECTURES}")
    try:
        if arch == "GPT2LMHeadModel":
            d_model, n_heads = hf["n_embd"], hf["n_head"]
            return dict(d_model=d_model, d_head=d_model // n_heads, n_heads=n_heads,
                        d_mlp=hf.get("n_inner") or 4 * d_model, n_layers=hf["n_layer"],
                        n_ctx=hf.get("n_positions", hf.get("n_ctx")), eps=hf.get("layer_norm_epsilon", 1e-5),
                        d_vocab=hf["vocab_size"], act_fn=hf.get("activation_function", "gelu_new"),
                        use_attn_scale=hf.get("scale_attn_weights", True),
                        scale_attn_by_inverse_layer_idx=hf.get("scale_attn_by_inverse_layer_idx", False),
                        normalization_type="LN", original_architecture=arch)
        d_model, n_heads = hf["hidden_size"], hf["num_attention_heads"]
        d_head = d_model // n_heads
        rotary_pct = hf.get("rotary_pct", hf.get("partial_rotary_factor",
                                                  (hf.get("rope_parameters") or {}).get("partial_rotary_factor", 1.0)))
        return dict(d_model=d_model, d_head=d_head, n_heads=n_heads, d_mlp=hf["intermediate_size"],
                    n_layers=hf["num_hidden_layers"], n_ctx=hf["max_position_embeddings"],
                    eps=hf.get("layer_norm_eps", 1e-5), d_vocab=hf["vocab_size"], act_fn=hf.get("hidden_act", "gelu"),
                    parallel_attn_mlp=hf.get("use_parallel_residual", True), positional_embedding_type="rotary",
                    rotary_dim=round(rotary_pct * d_head), rotary_adjacent_pairs=False,
                    rotary_base=hf.get("rotary_emb_base", (hf.get("rope_parameters") or {}).get("rope_theta", 10000)),
                    normalization_type="LN", default_prepend_bos=False, original_architecture=arch)
    except KeyError as e:
        raise CheckpointError(f"{cfg_file}: field {e.args[0]!r} is missing for architecture {arch}") from None


