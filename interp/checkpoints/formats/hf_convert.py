"""A local Hugging Face folder -> ``HookedTransformerConfig`` + TransformerLens state dict, offline, for every
decoder family TransformerLens 3.x has a weight converter for.

Reuse first: the config comes from TransformerLens's own per-architecture branch of ``convert_hf_model_config``
and the weights from its own ``convert_*_weights``; this module is the glue around them (measured on tiny random
models of each family, tests/test_formats_hf.py):

- the architecture is ``config.json["architectures"][0]``, never guessed from the path (TransformerLens sniffs
  "llama"/"gemma" in the name), and its branch runs on a config object handed in through a stand-in for
  ``AutoConfig`` in a neutral temporary folder;
- ``_BUILDERS``: families TransformerLens maps only by official model name (Gemma 1-3, OLMo 1-2);
- ``_FIXUPS``: fields its branches get wrong for shapes other than the official ones (MLP width, head_dim, rope
  theta, partial rotary) - several of them silently, with logits off by 1e-3 to 2;
- ``_unsupported``: variants TransformerLens cannot represent are refused by name instead of loading wrong;
- attention biases that Llama-style converters drop are copied back, and converted keys that TransformerLens
  would silently skip are an error.
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from interp.checkpoints.formats.hf import MAX_N_CTX, SUPPORTED
from interp.errors import CheckpointError

# converters that write zero attention biases whatever the checkpoint holds
_BIAS_DROPPING = {"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen3ForCausalLM",
                  "Phi3ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "OlmoForCausalLM",
                  "Olmo2ForCausalLM", "Olmo3ForCausalLM", "OlmoeForCausalLM", "ApertusForCausalLM"}
# rope scalings each branch implements (beyond the default)
_ROPE_OK = {"LlamaForCausalLM": {"llama3"}, "ApertusForCausalLM": {"llama3"}, "GptOssForCausalLM": {"yarn"},
            "Olmo3ForCausalLM": {"yarn"}, "Gemma3ForCausalLM": {"linear"}, "Gemma3ForConditionalGeneration": {"linear"}}


def _rope(c: Any, layer_type: str | None = None) -> dict:
    rp = getattr(c, "rope_parameters", None) or {}
    if layer_type and isinstance(rp.get(layer_type), dict):
        return rp[layer_type]
    return rp["full_attention"] if isinstance(rp.get("full_attention"), dict) else rp


def _theta(c: Any, layer_type: str | None = None) -> float:
    return _rope(c, layer_type).get("rope_theta", getattr(c, "rope_theta", None) or 10000.0)


def _partial(c: Any) -> float:
    return float(_rope(c).get("partial_rotary_factor", getattr(c, "partial_rotary_factor", None) or 1.0))


def _head_dim(c: Any) -> int:
    return getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads


def _kv_heads(c: Any) -> int:
    n = getattr(c, "num_key_value_heads", None)
    return c.num_attention_heads if n is None else n


def _gemma(c: Any, act: str) -> dict:
    return dict(d_model=c.hidden_size, d_head=_head_dim(c), n_heads=c.num_attention_heads,
                n_key_value_heads=_kv_heads(c), d_mlp=c.intermediate_size, n_layers=c.num_hidden_layers,
                n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps, d_vocab=c.vocab_size, act_fn=act,
                initializer_range=c.initializer_range, normalization_type="RMS", positional_embedding_type="rotary",
                rotary_dim=_head_dim(c), rotary_adjacent_pairs=False, rotary_base=_theta(c), use_attn_scale=True,
                gated_mlp=True, final_rms=True)


def _gemma2(c: Any) -> dict:
    d = _gemma(c, c.hidden_activation)
    types = ["local" if t == "sliding_attention" else "global" for t in (getattr(c, "layer_types", None) or [])]
    types = types or ["local", "global"] * (c.num_hidden_layers // 2)
    d.update(attn_scale=math.sqrt(c.query_pre_attn_scalar),
             attn_scores_soft_cap=float(getattr(c, "attn_logit_softcapping", None) or -1.0),
             output_logits_soft_cap=float(getattr(c, "final_logit_softcapping", None) or -1.0),
             use_normalization_before_and_after=True, use_local_attn=bool(c.sliding_window) and "local" in types,
             window_size=c.sliding_window, attn_types=types)
    return d


def _gemma3(c: Any) -> dict:
    d = _gemma2(c)
    full, local = _rope(c, "full_attention"), _rope(c, "sliding_attention")
    d.update(rotary_base=full.get("rope_theta", 1e6), rotary_base_local=local.get("rope_theta", 1e4),
             use_qk_norm=True)
    if full.get("rope_type", "default") == "linear":
        d["rotary_scaling_factor"] = float(full["factor"])   # TransformerLens scales the global layers only
    if local.get("rope_type", "default") != "default":
        raise CheckpointError("Gemma 3 with scaled rope on its sliding-window layers is not supported")
    return d


def _olmo(c: Any, rms: bool) -> dict:
    if _kv_heads(c) != c.num_attention_heads:
        raise CheckpointError(f"{c.architectures[0]} with grouped-query attention: its converter assumes MHA")
    d = c.hidden_size // c.num_attention_heads
    return dict(d_model=c.hidden_size, d_head=d, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
                n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings,
                eps=c.rms_norm_eps if rms else 1e-5,              # OLMo-1's non-parametric LayerNorm fixes 1e-5
                d_vocab=c.vocab_size, act_fn=c.hidden_act, initializer_range=c.initializer_range,
                normalization_type="RMS" if rms else "LN", positional_embedding_type="rotary", rotary_dim=d,
                rotary_base=_theta(c), gated_mlp=True, **({} if rms else {"clip_qkv": getattr(c, "clip_qkv", None)}))


_BUILDERS = {
    "GemmaForCausalLM": lambda c: _gemma(c, c.hidden_act), "Gemma2ForCausalLM": _gemma2,
    "Gemma3ForCausalLM": _gemma3, "Gemma3ForConditionalGeneration": lambda c: _gemma3(c.text_config),
    "OlmoForCausalLM": lambda c: _olmo(c, rms=False), "Olmo2ForCausalLM": lambda c: _olmo(c, rms=True),
}


def _fix_head_dim(d: dict, c: Any) -> None:
    if _head_dim(c) != d["d_head"]:
        d["d_head"] = _head_dim(c)
        d["rotary_dim"] = round(_partial(c) * d["d_head"])


def _fix_phi3(d: dict, c: Any) -> None:
    _fix_head_dim(d, c)
    d["rotary_dim"] = round(_partial(c) * d["d_head"])   # the branch ignores a partial rotary factor


_FIXUPS = {
    "GPT2LMHeadModel": lambda d, c: d.update(d_mlp=c.n_inner or 4 * c.n_embd, n_ctx=c.n_positions),
    "GPTNeoForCausalLM": lambda d, c: d.update(d_mlp=getattr(c, "intermediate_size", None) or 4 * c.hidden_size),
    "GPTJForCausalLM": lambda d, c: d.update(d_mlp=c.n_inner or 4 * c.n_embd),
    "GPTNeoXForCausalLM": lambda d, c: d.update(rotary_base=_theta(c)),
    "LlamaForCausalLM": _fix_head_dim, "MixtralForCausalLM": _fix_head_dim, "Qwen2ForCausalLM": _fix_head_dim,
    "Olmo3ForCausalLM": _fix_head_dim, "OlmoeForCausalLM": _fix_head_dim, "ApertusForCausalLM": _fix_head_dim,
    "MistralForCausalLM": lambda d, c: (_fix_head_dim(d, c), d.update(n_ctx=c.max_position_embeddings)),
    "Qwen3ForCausalLM": lambda d, c: d.update(n_ctx=c.max_position_embeddings),
    "Phi3ForCausalLM": _fix_phi3,
}
# before the branch runs: fields transformers 5 configs no longer carry where TransformerLens reads them
_PREPARE = {
    "GPT2LMHeadModel": lambda c: setattr(c, "n_ctx", c.n_positions),
    "PhiForCausalLM": lambda c: setattr(c, "partial_rotary_factor", _partial(c)),
}


def _unsupported(c: Any, arch: str) -> str | None:
    """Why TransformerLens cannot represent this variant (None when it can)."""
    tc = c.text_config if arch == "Gemma3ForConditionalGeneration" else c
    rp = getattr(tc, "rope_parameters", None) or {}
    kinds = {(v or {}).get("rope_type", "default") for v in rp.values()} if rp and all(
        isinstance(v, dict) for v in rp.values()) else {rp.get("rope_type", "default")}
    bad = kinds - {"default"} - _ROPE_OK.get(arch, set())
    checks = [
        (bad, f"rope_type {sorted(bad)}"),
        (arch in _BIAS_DROPPING and getattr(c, "mlp_bias", False), "mlp_bias=True (a gated MLP without gate bias)"),
        (arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM") and getattr(c, "use_sliding_window", False),
         "use_sliding_window=True"),
        (arch == "OPTForCausalLM" and not getattr(c, "do_layer_norm_before", True), "post-LayerNorm OPT"),
        (arch == "OPTForCausalLM" and getattr(c, "word_embed_proj_dim", c.hidden_size) != getattr(c, "hidden_size", 0),
         "project_in/project_out"),
        (arch == "OPTForCausalLM" and not getattr(c, "enable_bias", True), "OPT without biases"),
        (arch == "BloomForCausalLM" and getattr(c, "apply_residual_connection_post_layernorm", False),
         "apply_residual_connection_post_layernorm=True"),
        (arch == "PhiForCausalLM" and (_kv_heads(c) != c.num_attention_heads or getattr(c, "qk_layernorm", False)),
         "Phi with grouped-query attention or qk_layernorm"),
        (arch == "GPTNeoXForCausalLM" and not getattr(c, "attention_bias", True), "GPT-NeoX without attention biases"),
        (arch == "GPT2LMHeadModel" and getattr(c, "add_cross_attention", False), "GPT-2 with cross attention"),
    ]
    return next((why for cond, why in checks if cond), None)


class _ConfigStandIn:
    """Replaces transformers' ``AutoConfig`` inside TransformerLens while its branch runs, so the branch reads the
    config object prepared here (patches on it would not survive a JSON round trip)."""

    def __init__(self, config: Any):
        self._config = config

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        return self._config


def _branch(config: Any) -> dict:
    from unittest import mock

    import transformer_lens.loading_from_pretrained as tl_loading

    prepared = copy.deepcopy(config)
    _PREPARE.get(config.architectures[0], lambda c: None)(prepared)
    folder = tempfile.mkdtemp(prefix="interp-cfg-")   # no family name in it: TransformerLens sniffs paths
    try:
        (Path(folder) / "config.json").write_text(prepared.to_json_string())
        with mock.patch.object(tl_loading, "AutoConfig", _ConfigStandIn(prepared)):
            return tl_loading.convert_hf_model_config(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tl_config(config: Any, where: Path, dtype: Any) -> Any:
    """``HookedTransformerConfig`` for a transformers config (the architecture from ``config.architectures``)."""
    from transformer_lens import HookedTransformerConfig

    arch = (getattr(config, "architectures", None) or [None])[0]
    if arch not in SUPPORTED:
        raise CheckpointError(f"{where}: architecture {arch!r} is not one interp can load; supported: "
                              f"{', '.join(SUPPORTED)}")
    why = _unsupported(config, arch)
    if why:
        raise CheckpointError(f"{where}: {arch} with {why} cannot be represented by TransformerLens's "
                              f"HookedTransformer; refused rather than loaded wrong")
    d = _BUILDERS[arch](config) if arch in _BUILDERS else _branch(config)
    if arch in _FIXUPS:
        _FIXUPS[arch](d, config)
    d.update(original_architecture=arch, tokenizer_name=None, init_weights=False, dtype=dtype, device="cpu",
             n_devices=1, from_checkpoint=False, model_name=d.get("model_name") or Path(where).name)
    d["n_ctx"] = min(d["n_ctx"], MAX_N_CTX)
    d.setdefault("default_prepend_bos", False)
    return HookedTransformerConfig.from_dict(d)


def restore_attention_biases(state: dict, hf_model: Any, cfg: Any, config: Any) -> None:
    """Llama-style converters write zero attention biases; with ``attention_bias=True`` the checkpoint has real
    ones (stock TransformerLens would be off by ~2 in the logits): copy them in."""
    if cfg.original_architecture not in _BIAS_DROPPING or not getattr(config, "attention_bias", False):
        return
    kv = "_" if cfg.n_key_value_heads is not None else ""
    layers = hf_model.model.layers if hasattr(hf_model.model, "layers") else hf_model.model.language_model.layers
    for i, layer in enumerate(layers):
        a = layer.self_attn
        for proj, key in (("q_proj", "b_Q"), ("k_proj", kv + "b_K"), ("v_proj", kv + "b_V")):
            bias = getattr(getattr(a, proj), "bias", None)
            if bias is not None:
                state[f"blocks.{i}.attn.{key}"] = bias.reshape(-1, cfg.d_head)
        if getattr(a.o_proj, "bias", None) is not None:
            state[f"blocks.{i}.attn.b_O"] = a.o_proj.bias


# keys converters write that HookedTransformer has no parameter for, and that carry nothing (Phi-3 writes LN biases
# for an RMS model; nanoGPT's converter writes the causal mask)
_HARMLESS_EXTRA = (".IGNORE", ".ln1.b", ".ln2.b", ".mask")
