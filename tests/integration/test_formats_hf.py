"""Every decoder family TransformerLens converts, loaded from a local folder that ``transformers`` itself wrote:
logits equal the ``transformers`` model's within 1e-4 (float32, no weight processing).

Each config deliberately uses knobs real checkpoints use and stock TransformerLens gets wrong or crashes on: an MLP
that is not 4x wide, grouped-query attention, head_dim != d_model / n_heads, sliding windows shorter than the
sequence, non-default rope theta, partial rotary, rope scaling, attention biases on a Llama, tied embeddings. The
folders' paths contain the family's name (pytest names them after the test id): the architecture must come from
config.json, not from the path. Every parameter is perturbed so that norms are not 1 and biases not 0.
"""

from __future__ import annotations

import pytest
import torch

V, D, L, H, MLP, CTX = 128, 64, 2, 4, 96, 64


def _cases() -> dict:
    import transformers as T

    rope = dict(rope_type="default")
    return {
        "gpt2": (T.GPT2Config, dict(vocab_size=V, n_embd=D, n_layer=L, n_head=H, n_positions=CTX, n_inner=MLP)),
        "gpt2-relu-invscale": (T.GPT2Config, dict(vocab_size=V, n_embd=D, n_layer=L, n_head=H, n_positions=CTX,
                                                  activation_function="relu", scale_attn_by_inverse_layer_idx=True)),
        "gpt_neo": (T.GPTNeoConfig, dict(vocab_size=V, hidden_size=D, num_layers=L, num_heads=H, window_size=4,
                                         max_position_embeddings=CTX, intermediate_size=MLP,
                                         attention_types=[[["global", "local"], L // 2]])),
        "gptj": (T.GPTJConfig, dict(vocab_size=V, n_embd=D, n_layer=L, n_head=H, n_positions=CTX, rotary_dim=8,
                                    n_inner=MLP)),
        "gpt_neox": (T.GPTNeoXConfig, dict(vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
                                           intermediate_size=MLP, max_position_embeddings=CTX,
                                           rope_parameters=rope | dict(rope_theta=5000.0, partial_rotary_factor=0.5))),
        "gpt_neox-sequential": (T.GPTNeoXConfig, dict(vocab_size=V, hidden_size=D, num_hidden_layers=L,
                                                      num_attention_heads=H, intermediate_size=MLP,
                                                      max_position_embeddings=CTX, use_parallel_residual=False)),
        "opt": (T.OPTConfig, dict(vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
                                  ffn_dim=MLP, word_embed_proj_dim=D, max_position_embeddings=CTX)),
        "bloom": (T.BloomConfig, dict(vocab_size=V, hidden_size=D, n_layer=L, n_head=H)),
        "llama": (T.LlamaConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                      num_attention_heads=H, num_key_value_heads=2, max_position_embeddings=CTX,
                                      rope_parameters=rope | dict(rope_theta=50000.0))),
        "llama-head_dim-tied-llama3rope": (T.LlamaConfig, dict(
            vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L, num_attention_heads=H,
            num_key_value_heads=2, head_dim=32, tie_word_embeddings=True, max_position_embeddings=CTX,
            rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                 high_freq_factor=4.0, original_max_position_embeddings=16))),
        "llama-attention_bias": (T.LlamaConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP,
                                                     num_hidden_layers=L, num_attention_heads=H, attention_bias=True,
                                                     max_position_embeddings=CTX)),
        "mistral": (T.MistralConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                          num_attention_heads=H, num_key_value_heads=2, head_dim=16, sliding_window=4,
                                          max_position_embeddings=CTX)),
        "mixtral": (T.MixtralConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                          num_attention_heads=H, num_key_value_heads=2, head_dim=32,
                                          num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=CTX)),
        "qwen2": (T.Qwen2Config, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                      num_attention_heads=H, num_key_value_heads=2, tie_word_embeddings=True,
                                      max_position_embeddings=CTX, rope_parameters=rope | dict(rope_theta=1e6))),
        "qwen3": (T.Qwen3Config, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                      num_attention_heads=H, num_key_value_heads=2, head_dim=32,
                                      tie_word_embeddings=True, max_position_embeddings=CTX)),
        "phi": (T.PhiConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                  num_attention_heads=H, max_position_embeddings=CTX,
                                  rope_parameters=rope | dict(rope_theta=10000.0, partial_rotary_factor=0.5))),
        "phi3-partial_rotary": (T.Phi3Config, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP,
                                                   num_hidden_layers=L, num_attention_heads=H, num_key_value_heads=2,
                                                   max_position_embeddings=CTX, original_max_position_embeddings=CTX,
                                                   pad_token_id=0, rope_parameters=rope | dict(
                                                       rope_theta=10000.0, partial_rotary_factor=0.5))),
        "phi3-sliding_window": (T.Phi3Config, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP,
                                                   num_hidden_layers=L, num_attention_heads=H, sliding_window=4,
                                                   max_position_embeddings=CTX, original_max_position_embeddings=CTX,
                                                   pad_token_id=0)),
        "gemma": (T.GemmaConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                      num_attention_heads=H, num_key_value_heads=1, head_dim=32,
                                      max_position_embeddings=CTX)),
        "gemma2": (T.Gemma2Config, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                        num_attention_heads=H, num_key_value_heads=2, head_dim=32,
                                        query_pre_attn_scalar=24, sliding_window=4,
                                        layer_types=["sliding_attention", "full_attention"],
                                        attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
                                        max_position_embeddings=CTX)),
        "gemma3": (T.Gemma3TextConfig, dict(
            vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L, num_attention_heads=H,
            num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=24, sliding_window=4,
            layer_types=["sliding_attention", "full_attention"], max_position_embeddings=CTX,
            rope_parameters={"sliding_attention": rope | {"rope_theta": 10000.0},
                             "full_attention": {"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0}})),
        "olmo": (T.OlmoConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                    num_attention_heads=H, clip_qkv=0.3, max_position_embeddings=CTX,
                                    pad_token_id=0)),
        "olmo2": (T.Olmo2Config, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                      num_attention_heads=H, max_position_embeddings=CTX, pad_token_id=0,
                                      rope_parameters=rope | dict(rope_theta=500000.0))),
        "olmo3": (T.Olmo3Config, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                      num_attention_heads=H, num_key_value_heads=2, sliding_window=4,
                                      layer_types=["sliding_attention", "full_attention"],
                                      max_position_embeddings=CTX, pad_token_id=0)),
        "olmoe": (T.OlmoeConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                      num_attention_heads=H, num_key_value_heads=2, num_experts=4,
                                      num_experts_per_tok=2, clip_qkv=0.3, max_position_embeddings=CTX,
                                      pad_token_id=0)),
        "apertus": (T.ApertusConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                          num_attention_heads=H, num_key_value_heads=2, max_position_embeddings=CTX,
                                          pad_token_id=0, rope_parameters=dict(
                                              rope_type="llama3", rope_theta=1.2e7, factor=8.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0, original_max_position_embeddings=16))),
        "gpt_oss": (T.GptOssConfig, dict(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=L,
                                         num_attention_heads=H, num_key_value_heads=2, head_dim=16,
                                         num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
                                         layer_types=["sliding_attention", "full_attention"],
                                         max_position_embeddings=CTX, pad_token_id=0, rope_parameters=dict(
                                             rope_type="yarn", rope_theta=150000.0, factor=4.0, beta_fast=32.0,
                                             beta_slow=1.0, truncate=False, original_max_position_embeddings=16))),
    }


CASES = ["gpt2", "gpt2-relu-invscale", "gpt_neo", "gptj", "gpt_neox", "gpt_neox-sequential", "opt", "bloom",
         "llama", "llama-head_dim-tied-llama3rope", "llama-attention_bias", "mistral", "mixtral", "qwen2", "qwen3",
         "phi", "phi3-partial_rotary", "phi3-sliding_window", "gemma", "gemma2", "gemma3", "olmo", "olmo2", "olmo3",
         "olmoe", "apertus", "gpt_oss"]


def save_tiny(case: str, folder, seed: int = 0):
    """A tiny random model of ``case``, every parameter perturbed, saved by ``transformers`` into ``folder``."""
    from transformers import AutoModelForCausalLM

    cls, kwargs = _cases()[case]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cls(**kwargs), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim <= 1 else 0.05))
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("case", CASES)
def test_logits_equal_transformers(case, tmp_path):
    from transformers import AutoModelForCausalLM

    import interp

    folder = save_tiny(case, tmp_path / case / "checkpoint")
    tokens = torch.randint(0, V, (2, 24), generator=torch.Generator().manual_seed(1))
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = reference(tokens).logits
        model = interp.load_checkpoint(folder, device="cpu")
        got = model(tokens)
    assert model.cfg.original_architecture == reference.config.architectures[0]
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4, f"{case}: max |logit difference| {diff:.2e}"
    if model.cfg.positional_embedding_type != "standard" and hasattr(model, "pos_embed"):
        # unused by the forward pass, but analyzers read every weight: zeros, never uninitialised memory
        assert not model.pos_embed.W_pos.any()


def test_unsupported_architectures_name_the_supported_ones(tmp_path):
    import json

    import interp
    from interp.errors import CheckpointError

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "vocab_size": 8}))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="BertForMaskedLM.*supported: GPT2LMHeadModel"):
        interp.load_checkpoint(folder)


def test_a_variant_transformer_lens_cannot_represent_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    import interp
    from interp.errors import CheckpointError

    cfg = LlamaConfig(vocab_size=V, hidden_size=D, intermediate_size=MLP, num_hidden_layers=1, num_attention_heads=H,
                      mlp_bias=True)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="mlp_bias"):
        interp.load_checkpoint(tmp_path / "m")
