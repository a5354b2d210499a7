import numpy as np
import pytest
import torch

from interp.activations.cache import ActivationCache, CacheSettings, stop_layer
from interp.activations.store import HookArray, HookWriter, is_complete
from interp.checkpoints.loading import load_ref
from interp.errors import HookNameError
from interp.maths.losses import masked_next_token_loss
from interp.prompts.source import PromptSource

HOOKS = ["blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "blocks.0.hook_resid_mid"]


@pytest.fixture(scope="module")
def setup(wide_ref):
    model = load_ref(wide_ref, device="cpu")
    prompts = PromptSource(n_background=100).build(wide_ref)
    return wide_ref, model, prompts


def test_streamed_cache_equals_in_memory_run_with_cache(setup, tmp_path):
    ref, model, prompts = setup
    cache = ActivationCache(CacheSettings(tmp_path, batch_size=97))  # several batches, ragged last one
    cache.ensure(ref, prompts, HOOKS, model_fn=lambda: model)
    with torch.inference_mode():
        _, ref_cache = model.run_with_cache(torch.as_tensor(prompts.tokens), names_filter=HOOKS)
    for h in HOOKS:
        arr = cache.open(ref, prompts, h)
        stored = arr.read()
        np.testing.assert_array_equal(stored, ref_cache[h].numpy())
        assert arr.attrs["checkpoint"] == ref.id and arr.attrs["sha256"] == ref.sha256
        assert arr.dims[:2] == ("prompt", "pos")
        chunks = list(arr.blocks(50))
        assert sum(len(c) for c in chunks) == len(prompts)
        np.testing.assert_array_equal(np.concatenate(chunks), stored)
        # a token budget: whole prompts, about that many token vectors per block, whole HDF5 chunks when larger
        per_prompt = int(np.prod(stored.shape[1:-1]))
        for tokens in (1, 50 * per_prompt + 3, 10**9):
            rows = arr.rows_for(tokens)
            want = max(1, tokens // per_prompt)
            assert rows == (want if want < arr.chunk_rows else want - want % arr.chunk_rows)
            blocks = list(arr.chunks(tokens))
            assert all(len(b) == rows for b in blocks[:-1])
            np.testing.assert_array_equal(np.concatenate(blocks), stored)


def test_gradients_are_each_prompts_own_loss_gradient(setup, tmp_path):
    ref, model, prompts = setup
    cache = ActivationCache(CacheSettings(tmp_path, batch_size=64))
    hook = "blocks.0.mlp.hook_post"
    cache.ensure(ref, prompts, grad_hooks=[hook], model_fn=lambda: model)
    grads = cache.open(ref, prompts, hook, grad=True).read()
    acts = cache.open(ref, prompts, hook).read()  # the backward pass also stored the activations
    for i in (0, 5, len(prompts) - 1):  # one prompt at a time, through autograd directly
        store = {}

        def keep(act, hook, store=store):
            act.retain_grad()
            store["a"] = act

        toks = torch.as_tensor(prompts.tokens[i:i + 1])
        logits = model.run_with_hooks(toks, fwd_hooks=[(hook, keep)])
        masked_next_token_loss(logits, toks, torch.as_tensor(prompts.loss_mask[i:i + 1]), reduction="none").sum() \
            .backward()
        model.zero_grad(set_to_none=True)
        np.testing.assert_allclose(grads[i], store["a"].grad[0].numpy(), rtol=1e-5, atol=1e-7)
        # batch vs single GEMM: float32 sums in another order
        np.testing.assert_allclose(acts[i], store["a"].detach()[0].numpy(), rtol=1e-5, atol=1e-6)


def test_forward_pass_runs_once_per_hook_set(setup, tmp_path):
    ref, model, prompts = setup
    cache = ActivationCache(CacheSettings(tmp_path, batch_size=1000))
    n_batches = -(-len(prompts) // 1000)
    loads = []

    def model_fn():
        loads.append(1)
        return model

    cache.ensure(ref, prompts, HOOKS[:2], model_fn=model_fn)
    assert cache.forward_passes == n_batches
    cache.ensure(ref, prompts, HOOKS[:2], model_fn=model_fn)  # second analyzer, same needs: nothing runs
    cache.ensure(ref, prompts, HOOKS[:1], model_fn=model_fn)
    assert cache.forward_passes == n_batches and len(loads) == 1
    reopened = ActivationCache(CacheSettings(tmp_path, batch_size=1000))  # a new process reuses the files
    reopened.ensure(ref, prompts, HOOKS[:2], model_fn=model_fn)
    assert reopened.forward_passes == 0
    cache.ensure(ref, prompts, HOOKS, model_fn=model_fn)  # one new hook: one more pass, for it alone
    assert cache.forward_passes == 2 * n_batches


def test_hook_typo_suggests_the_nearest_name(setup, tmp_path):
    ref, model, prompts = setup
    cache = ActivationCache(CacheSettings(tmp_path))
    with pytest.raises(HookNameError, match="blocks.0.mlp.hook_post"):
        cache.ensure(ref, prompts, ["blocks.0.mlp.hook_pots"], model_fn=lambda: model)
    assert not list(tmp_path.rglob("*.h5"))


def test_stop_layer():
    assert stop_layer(["blocks.0.mlp.hook_post"], 3) == 1
    assert stop_layer(["blocks.1.attn.hook_z", "blocks.0.mlp.hook_post"], 3) == 2
    assert stop_layer(["blocks.2.hook_resid_post"], 3) is None
    assert stop_layer(["ln_final.hook_normalized"], 3) is None


def test_an_unfinished_file_is_never_complete(tmp_path):
    path = tmp_path / "x.h5"
    w = HookWriter(path, (3,), ("prompt", "d"), {})
    w.append(np.ones((4, 3), np.float32))
    assert not is_complete(path) and not path.exists()
    w._f.close()
    w.tmp.replace(path)  # even a renamed, unfinished file (no 'complete' attribute) does not count
    assert not is_complete(path)
    w2 = HookWriter(tmp_path / "y.h5", (3,), ("prompt", "d"), {})
    w2.append(np.ones((2, 3), np.float32))
    w2.commit()
    assert is_complete(tmp_path / "y.h5") and HookArray(tmp_path / "y.h5").shape == (2, 3)


def test_nonfinite_activations_raise_and_leave_no_file(setup, tmp_path):
    import copy

    from interp.errors import NonFiniteError

    ref, model, prompts = setup
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.W_E[int(prompts.tokens[3, 1])] = float("inf")
    cache = ActivationCache(CacheSettings(tmp_path, batch_size=64))
    with pytest.raises(NonFiniteError, match="blocks.0.mlp.hook_post"):
        cache.ensure(ref, prompts, ["blocks.0.mlp.hook_post"], model_fn=lambda: broken)
    assert not list(tmp_path.rglob("*.h5*"))
    keep = ActivationCache(CacheSettings(tmp_path, batch_size=64, nonfinite="keep"))
    keep.ensure(ref, prompts, ["blocks.0.mlp.hook_post"], model_fn=lambda: broken)
    assert keep.open(ref, prompts, "blocks.0.mlp.hook_post").attrs["nonfinite"] > 0


def test_float16_overflow_is_caught_and_small_sets_stay_small(setup, tmp_path):
    import copy

    from interp.errors import NonFiniteError

    ref, model, prompts = setup
    big = copy.deepcopy(model)
    with torch.no_grad():
        big.W_E.mul_(1e5)   # finite in float32, beyond float16's 65,504
    cache = ActivationCache(CacheSettings(tmp_path, batch_size=64, storage_dtype="float16"))
    with pytest.raises(NonFiniteError, match="float16"):
        cache.ensure(ref, prompts, ["blocks.0.hook_resid_pre"], model_fn=lambda: big)
    small = prompts.subset(slice(0, 5))
    cache.ensure(ref, small, ["blocks.0.mlp.hook_post", "hook_embed"], model_fn=lambda: model)  # embed + block
    path = cache.path(ref, small, "blocks.0.mlp.hook_post")
    assert path.stat().st_size < 400_000   # one ~256 KiB chunk, not 1,024 rows
