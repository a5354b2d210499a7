"""Hugging Face model folders (``config.json`` + weights), read as JSON only: no torch, no transformers, no
TransformerLens, so a manifest can be planned (hooks per layer, vocabulary, context) without loading a model.

``hf_model_kwargs`` gives the shape fields every family's config spells differently; the full conversion to a
``HookedTransformerConfig`` happens when the model is loaded (``interp.checkpoints.formats.hf_convert``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interp.errors import CheckpointError

# every decoder family with a TransformerLens 3.9 weight converter that loads from a local folder (hf_convert)
SUPPORTED = (
    "GPT2LMHeadModel", "GPTNeoForCausalLM", "GPTJForCausalLM", "GPTNeoXForCausalLM", "OPTForCausalLM",
    "BloomForCausalLM", "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM",
    "Qwen3ForCausalLM", "PhiForCausalLM", "Phi3ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM",
    "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration", "OlmoForCausalLM", "Olmo2ForCausalLM",
    "Olmo3ForCausalLM", "OlmoeForCausalLM", "ApertusForCausalLM", "GptOssForCausalLM",
)
_LAYERS = ("num_hidden_layers", "n_layer", "num_layers")
_WIDTH = ("hidden_size", "n_embd", "d_model")
_MLP = ("intermediate_size", "n_inner", "ffn_dim")
_CTX = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")
MAX_N_CTX = 8192   # TransformerLens precomputes rotary tables for n_ctx positions in every layer


def _first(cfg: dict, keys: tuple[str, ...]) -> Any:
    return next((cfg[k] for k in keys if cfg.get(k) is not None), None)


def read_config(folder: Path) -> dict[str, Any]:
    cfg_file = Path(folder) / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{folder}: no config.json; a Hugging Face checkpoint folder needs one")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_file}: expected a JSON object")
    return cfg


def hf_model_kwargs(folder: Path) -> dict[str, Any]:
    """The shape of a Hugging Face model folder as ``HookedTransformerConfig`` field names (n_layers, d_model,
    d_mlp, d_vocab, n_ctx, original_architecture). Unsupported architectures are refused here, by name."""
    cfg = read_config(folder)
    arch = (cfg.get("architectures") or [None])[0]
    if arch not in SUPPORTED:
        raise CheckpointError(f"{folder}/config.json: architecture {arch!r} is not one interp can load; supported: "
                              f"{', '.join(SUPPORTED)}")
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    d_model = _first(text, _WIDTH)
    out = dict(n_layers=_first(text, _LAYERS), d_model=d_model, d_mlp=_first(text, _MLP) or (
        4 * d_model if d_model else None), d_vocab=text.get("vocab_size"), n_ctx=_first(text, _CTX),
               original_architecture=arch)
    if arch == "BloomForCausalLM":
        out["n_ctx"] = 2048                     # ALiBi: no position table; TransformerLens uses 2048
    missing = [k for k in ("n_layers", "d_model", "d_vocab") if out[k] is None]
    if missing:
        raise CheckpointError(f"{folder}/config.json: cannot read {missing} for architecture {arch}")
    if out["n_ctx"] is not None:
        out["n_ctx"] = min(int(out["n_ctx"]), MAX_N_CTX)
    return out
