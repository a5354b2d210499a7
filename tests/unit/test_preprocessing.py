"""The papers' preprocessing on real models: statistics over text leave out a window's first position and special
tokens (planted outliers there would otherwise set the kurtosis), windows start with BOS where the tokenizer adds
one, and weight metrics read the weights with the final LayerNorm folded into W_U (a gain that is not 1 changes
them), each checked against an independent float64 computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.activations.cache import CacheSettings
from interp.analyzers.base import Unit
from interp.analyzers.neuron_stats.analyzer import NeuronStats
from interp.checkpoints.loading import SLOT, build_model, save_checkpoint
from interp.checkpoints.manifest import CheckpointRef, Processing, file_sha256
from interp.prompts.prompt_set import PromptSet
from interp.prompts.source import PromptSource
from interp.runner.context import Context, ContextSettings
from tests.helpers import tiny_model_kwargs


def _model(tmp_path, **kw):
    args = tiny_model_kwargs(d_vocab=32, d_mlp=16, n_ctx=12, **kw) | {"seed": 3}
    model = build_model(args)
    path = tmp_path / "m.safetensors"
    return model, args, path


def _ref(model, args, path) -> CheckpointRef:
    save_checkpoint(model, path)
    return CheckpointRef(run="p", seed=0, step=0, path=path, model=args, processing=Processing(),
                         sha256=file_sha256(path))


def _stats(ref, prompts, tmp_path, **cfg):
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu", PromptSource(fixed=prompts)))
    a = NeuronStats(NeuronStats.config_from(cfg))
    ctx.ensure(ref, a.needs(ref))
    r = a.run(Unit(a.name, (ref,)), ctx)
    SLOT.clear()
    return r


def _kurtosis(x: np.ndarray) -> np.ndarray:
    d = x - x.mean(0)
    var = (d**2).mean(0)
    return np.where(var > 0, (d**4).mean(0) / np.where(var > 0, var, 1) ** 2, 0.0)


def test_a_windows_first_position_and_special_tokens_are_left_out_of_the_statistics(tmp_path):
    model, args, path = _model(tmp_path)
    with torch.no_grad():   # a position-0 outlier, as real models have: every neuron's input jumps there
        model.W_pos[0] += 40 * torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    ref = _ref(model, args, path)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 32, size=(64, 12))
    tokens[::5, 7] = 1                                                    # a special token here and there
    text = PromptSet(tokens, np.full(64, -1), np.ones((64, 11), bool), (), special_ids=(1,), window_start=True)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens), names_filter="blocks.0.mlp.hook_pre")
    pre = cache["blocks.0.mlp.hook_pre"].double().numpy()                 # [prompt, pos, neuron]
    keep = np.ones(tokens.shape, bool)
    keep[:, 0] = False
    keep &= tokens != 1
    default = _stats(ref, text, tmp_path / "a")
    np.testing.assert_allclose(default.arrays["kurtosis"][0], _kurtosis(pre[keep]), rtol=1e-6, atol=1e-9)
    assert default.scalars["n_tokens"] == int(keep.sum())
    kept = _stats(ref, text, tmp_path / "b", keep_first_position=True, keep_special_tokens=True)
    np.testing.assert_allclose(kept.arrays["kurtosis"][0], _kurtosis(pre.reshape(-1, 16)), rtol=1e-6, atol=1e-9)
    # the outlier dominates the statistics it is let into
    assert np.median(kept.arrays["kurtosis"]) > 1.3 * np.median(default.arrays["kurtosis"])


def test_weight_metrics_fold_the_final_layernorm_into_the_unembedding(tmp_path):
    model, args, path = _model(tmp_path, normalization_type="LN")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.ln_final.w.copy_(torch.rand(model.cfg.d_model, generator=g) * 3 + 0.1)   # gains far from 1
        model.blocks[0].ln2.w.copy_(torch.rand(model.cfg.d_model, generator=g) * 3 + 0.1)
    ref = _ref(model, args, path)
    prompts = PromptSet(np.random.default_rng(0).integers(0, 32, size=(8, 12)), np.full(8, -1),
                        np.ones((8, 11), bool), ())
    r = _stats(ref, prompts, tmp_path)
    # by hand, in float64 numpy: fold, centre, then the moments of cos(w_out, W_U[:, v]) over the vocabulary
    w_u = model.ln_final.w.detach().double().numpy()[:, None] * model.W_U.detach().double().numpy()
    w_u = w_u - w_u.mean(1, keepdims=True)
    w_out = model.blocks[0].mlp.W_out.detach().double().numpy()
    w_out = w_out - w_out.mean(1, keepdims=True)
    w_in = model.blocks[0].ln2.w.detach().double().numpy()[:, None] * model.blocks[0].mlp.W_in.detach().double().numpy()
    cos = (w_out / np.linalg.norm(w_out, axis=1, keepdims=True)) @ (w_u / np.linalg.norm(w_u, axis=0, keepdims=True))
    np.testing.assert_allclose(r.arrays["vocab_cos_kurtosis"][0], _kurtosis(cos.T), rtol=1e-9)
    np.testing.assert_allclose(r.arrays["w_in_norm"][0], np.linalg.norm(w_in, axis=0), rtol=1e-9)
    assert r.scalars["weight_processing"] == {"fold_ln": True, "norm": "LN", "center_unembed": True,
                                              "center_writing_weights": True}
    raw = model.W_U.detach().double().numpy()
    raw_cos = (model.blocks[0].mlp.W_out.detach().double().numpy() @ (raw / np.linalg.norm(raw, axis=0)))
    raw_cos /= np.linalg.norm(model.blocks[0].mlp.W_out.detach().double().numpy(), axis=1, keepdims=True)
    # read as stored, the moments are not the paper's: the gains and the offsets change them
    assert not np.allclose(_kurtosis(raw_cos.T), r.arrays["vocab_cos_kurtosis"][0], rtol=1e-3)


def test_text_windows_start_with_bos_where_the_tokenizer_adds_one(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    from interp.prompts.text import codec, tokenize_to_windows

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(["a b c d e"], trainers.WordLevelTrainer(special_tokens=["<s>", "[UNK]"]))
    text = tmp_path / "t.txt"
    text.write_text("a b c d e " * 10)
    plain = tmp_path / "plain.json"
    tok.save(str(plain))
    out = np.load(tokenize_to_windows(text, plain, 4, tmp_path / "plain.npy"))
    assert codec(plain).bos is None and out.shape == (12, 4) and (out[:, 0] != 0).all()   # GPT-2 / NeoX style
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    with_bos = tmp_path / "bos.json"
    tok.save(str(with_bos))
    out = np.load(tokenize_to_windows(text, with_bos, 4, tmp_path / "bos.npy"))
    assert codec(with_bos).bos == 0 and out.shape == (16, 4) and (out[:, 0] == 0).all()   # Llama style: BOS + 3
    assert list(out[0, 1:]) == [tok.token_to_id(w) for w in "a b c".split()]
    capped = np.load(tokenize_to_windows(text, with_bos, 4, tmp_path / "cap.npy", max_tokens=9))
    assert capped.shape == (3, 4)   # --max-tokens: 9 text tokens make three windows of BOS + 3


@pytest.mark.parametrize("kind", ["LN", None])
def test_the_processing_record_says_what_was_folded(tmp_path, kind):
    from interp.maths.weights import processing_record

    model, _, _ = _model(tmp_path, normalization_type=kind)
    rec = processing_record(model)
    assert rec["fold_ln"] is (kind == "LN") and rec["center_writing_weights"] is (kind == "LN")
