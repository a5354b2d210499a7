"""A user's token file is streamed, never loaded whole: memory-mapped tokens in their own dtype, a broadcast loss
mask, digests hashed in row blocks, gradients taken one chunk of prompts at a time."""

import hashlib
import json

import numpy as np
import pytest
import torch

from interp.activations.cache import ActivationCache, CacheSettings
from interp.analyzers.grad_interference.analyzer import GradientSpace, task_grad
from interp.checkpoints.loading import load_ref
from interp.errors import ConfigError, PromptError
from interp.maths.losses import masked_next_token_loss
from interp.prompts.source import PromptSource

HOOK = "blocks.0.mlp.hook_post"


@pytest.fixture()
def token_file(tmp_path):
    toks = np.random.default_rng(1).integers(0, 96, size=(300, 3)).astype(np.uint16)
    np.save(tmp_path / "tokens.npy", toks)
    return tmp_path / "tokens.npy", toks


def test_token_file_stays_on_disk(token_file):
    path, toks = token_file
    prompts = PromptSource(tokens_file=path).build(None)
    assert isinstance(prompts.tokens, np.memmap) and prompts.tokens.dtype == np.uint16
    assert prompts.loss_mask.shape == (300, 2) and prompts.loss_mask.strides == (0, 0)   # no bytes per token
    assert prompts.loss_mask.all() and (prompts.task_id == -1).all()


def test_digest_is_the_hash_of_the_whole_arrays(token_file, wide_ref):
    path, _ = token_file
    for prompts in (PromptSource(tokens_file=path).build(None), PromptSource(n_background=50).build(wide_ref)):
        h = hashlib.sha256()
        for a in (prompts.tokens, prompts.task_id, prompts.loss_mask):
            h.update(np.array(a).tobytes())            # materialised in one piece, independently of the code
        h.update(json.dumps(prompts.task_names).encode())
        if prompts.window_start or prompts.special_ids:   # windows of text say so (the toy mixture's do not)
            h.update(json.dumps([list(prompts.special_ids), prompts.window_start]).encode())
        assert prompts.digest() == h.hexdigest()[:16]


def test_cache_from_a_narrow_memmapped_file_equals_int64_tokens(token_file, wide_ref, tmp_path):
    path, toks = token_file
    model = load_ref(wide_ref, device="cpu")
    prompts = PromptSource(tokens_file=path).build(wide_ref)
    cache = ActivationCache(CacheSettings(tmp_path / "cache", batch_size=64))
    cache.ensure(wide_ref, prompts, [HOOK], grad_hooks=[HOOK], model_fn=lambda: model)
    tokens = torch.as_tensor(toks.astype(np.int64))
    with torch.inference_mode():
        _, expect = model.run_with_cache(tokens, names_filter=[HOOK])
    np.testing.assert_array_equal(cache.open(wide_ref, prompts, HOOK).read(), expect[HOOK].numpy())
    grads = cache.open(wide_ref, prompts, HOOK, grad=True).read()
    store = {}

    def keep(act, hook):
        act.retain_grad()
        store["a"] = act

    with torch.enable_grad():   # prompt 7 alone, its full-sequence loss (every position scored)
        logits = model.run_with_hooks(tokens[7:8], fwd_hooks=[(HOOK, keep)])
        mask = torch.ones(1, 2, dtype=torch.bool)
        masked_next_token_loss(logits, tokens[7:8], mask, reduction="none").sum().backward()
    model.zero_grad(set_to_none=True)
    np.testing.assert_allclose(grads[7], store["a"].grad[0].numpy(), rtol=1e-5, atol=1e-6)   # batch vs single GEMM


@pytest.mark.parametrize("bad, match", [(np.zeros((4, 3)), "integer"), (np.zeros(5, dtype=int), "2-D"),
                                        (np.zeros((4, 1), dtype=int), "pos >= 2"), (None, "does not exist")])
def test_bad_token_files_are_refused_by_name(tmp_path, bad, match):
    path = tmp_path / "t.npy"
    if bad is not None:
        np.save(path, bad)
    with pytest.raises(PromptError if bad is not None else ConfigError, match=match) as e:
        PromptSource(tokens_file=path).build(None)
    assert str(path) in str(e.value)


def test_chunked_task_gradient_equals_one_backward_in_float64(wide_ref):
    model = load_ref(wide_ref, device="cpu").double()
    prompts = PromptSource(n_background=40).build(wide_ref)
    rows = np.flatnonzero(prompts.task_id == 1)
    space = GradientSpace(model)
    chunked = task_grad(space, model, prompts, rows, chunk=7)   # ragged last chunk
    with torch.enable_grad():
        toks = torch.as_tensor(prompts.tokens[rows])
        mask = torch.as_tensor(prompts.loss_mask[rows])
        loss = masked_next_token_loss(model(toks), toks, mask, reduction="none").sum() / mask.sum()
        direct = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, space.params)]).numpy()
    np.testing.assert_allclose(chunked, direct, rtol=1e-9, atol=1e-13)
