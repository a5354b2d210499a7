"""``neuron-roles`` on a planted model: every role is put into chosen neurons by hand and must come back as exactly
that role, with no other neuron flagged; the vocabulary moments and the deactivation score are recomputed here in
numpy from the raw weights, folded and centred by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from interp.activations.cache import CacheSettings
from interp.analyzers.base import Unit
from interp.analyzers.neuron_roles.analyzer import NeuronRoles, NeuronRolesConfig
from interp.analyzers.neuron_roles.roles import ROLES
from interp.checkpoints.loading import SLOT
from interp.prompts.prompt_set import PromptSet
from interp.prompts.source import PromptSource
from interp.runner.context import Context, ContextSettings
from tests.helpers import tiny_model_kwargs

D, V, M = 16, 64, 24                   # d_model, vocabulary, neurons per layer
PRED_TOKENS = [3, 4, 5]                # the tokens the prediction neuron raises (and the suppression one lowers)
L1_PRED, L1_SUPP, L1_PART, L1_ENT = 0, 1, 2, 3   # planted neurons of layer 1 (the last)
L0_DEACT = 5                           # planted neuron of layer 0, deactivating head (1, 0)
KEY = np.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.0, -1.0, 2.0])   # layer 1's key biases, heads 0 and 1
KEY1 = np.array([0.5, 0.5, -1.0, 0.0, 1.0, -0.5, 0.0, 1.0])


def _directions(rng):
    """Orthonormal directions orthogonal to the all-ones vector (what a LayerNorm model can read)."""
    a = rng.normal(size=(D, D))
    a[:, 0] = 1.0
    q, _ = np.linalg.qr(a)
    return q[:, 1:]            # [D, D-1], each column sums to 0


def build(tmp_path, gains: bool = False, seed: int = 0):
    """A 2-layer LayerNorm model whose processed unembedding P (gain folded, centred) we choose: direction u1 carries
    a +5 on PRED_TOKENS, u2 a +-1 split of the vocabulary, e is read by no token (an exact null direction), and
    small noise fills the rest. Background neurons write small random vectors into the noise directions. Head
    (1, 0) reads f, the deactivation neuron's output, into a query along its mean key at position 0 (also
    returned, from TransformerLens' own cache)."""
    import torch

    from interp.checkpoints.loading import build_model, save_checkpoint
    from interp.checkpoints.manifest import CheckpointRef, Processing, file_sha256

    rng = np.random.default_rng(seed)
    dirs = _directions(rng)
    u1, u2, e, f, noise = dirs[:, 0], dirs[:, 1], dirs[:, 2], dirs[:, 3], dirs[:, 4:]
    p = 0.1 * rng.normal(size=(D, V))
    p += 5.0 * np.outer(u1, np.isin(np.arange(V), PRED_TOKENS))
    p += np.outer(u2, np.where(np.arange(V) < V // 2, 1.0, -1.0))
    p -= np.outer(e, e @ p)
    p -= p.mean(1, keepdims=True)
    g = rng.uniform(0.5, 2.0, size=D) if gains else np.ones(D)
    g1 = rng.uniform(0.5, 2.0, size=D) if gains else np.ones(D)           # layer 1's pre-attention gain
    kw = tiny_model_kwargs(d_vocab=V, d_mlp=M, n_layers=2, n_heads=2, d_head=8, n_ctx=4) | {
        "d_model": D, "normalization_type": "LN", "seed": 0}
    model = build_model(kw)
    w_out = [noise @ rng.normal(size=(noise.shape[1], M)) * 0.3 / np.sqrt(noise.shape[1]) for _ in range(2)]
    w_out = [w.T.copy() for w in w_out]                                   # [neuron, d_model]
    w_out[1][L1_PRED], w_out[1][L1_SUPP], w_out[1][L1_PART], w_out[1][L1_ENT] = u1, -u1, u2, 3.0 * e
    w_out[0][L0_DEACT] = f
    tokens = np.random.default_rng(1).integers(0, V, size=(12, 4))
    with torch.no_grad():
        model.unembed.W_U.copy_(torch.tensor(p / g[:, None]))
        model.ln_final.w.copy_(torch.tensor(g))
        for layer in range(2):
            model.blocks[layer].mlp.W_out.copy_(torch.tensor(w_out[layer]))
        model.blocks[1].attn.W_K.copy_(torch.tensor(0.3 * rng.normal(size=(2, D, 8))))
        model.blocks[1].attn.b_K.copy_(torch.tensor(np.stack([KEY, KEY1])))
        model.blocks[1].ln1.w.copy_(torch.tensor(g1))
        # the mean key at position 0, from TransformerLens' own cache (layer 1's keys do not depend on its W_Q)
        _, cache = model.run_with_cache(torch.tensor(tokens), names_filter="blocks.1.attn.hook_k")
        k_first = cache["blocks.1.attn.hook_k"][:, 0].double().mean(0).numpy()      # [head, d_head]
        w_q = 0.1 * rng.normal(size=(2, D, 8))
        w_q[0] = np.outer(f / g1, k_first[0]) * 2.0                    # folded: f . (g1 * W_Q[0]) = 2 k_first[0]
        model.blocks[1].attn.W_Q.copy_(torch.tensor(w_q))
    path = tmp_path / f"planted{seed}{'g' if gains else ''}.safetensors"
    save_checkpoint(model, path)
    ref = CheckpointRef(run="planted", seed=seed, step=0, path=path, model=kw, processing=Processing(),
                        sha256=file_sha256(path))
    return ref, PromptSet(tokens, np.full(12, -1), np.ones((12, 3), bool), ()), k_first


def analyze(ref, prompts, tmp_path, **cfg):
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu", PromptSource(fixed=prompts)))
    a = NeuronRoles(NeuronRolesConfig(**({"null_dims": 1} | cfg)))
    ctx.ensure(ref, a.needs(ref))
    try:
        return a.run(Unit(a.name, (ref,)), ctx)
    finally:
        SLOT.clear()


def flagged(r, role):
    return sorted(map(tuple, np.argwhere(r.flags(role)).tolist()))


@pytest.mark.parametrize("gains", [False, True])
def test_each_planted_role_comes_back_and_nothing_else(tmp_path, gains):
    ref, prompts, k_first = build(tmp_path, gains)
    r = analyze(ref, prompts, tmp_path)
    assert flagged(r, "prediction") == [(1, L1_PRED)]
    assert flagged(r, "suppression") == [(1, L1_SUPP)]
    assert flagged(r, "partition") == [(1, L1_PART)]
    assert flagged(r, "entropy") == [(1, L1_ENT)]
    assert flagged(r, "deactivation") == [(0, L0_DEACT)]
    assert r.scalars["counts"] == {"prediction": [0, 1], "suppression": [0, 1], "partition": [0, 1],
                                   "entropy": [0, 1], "deactivation": [1, 0]}
    assert r.stat("null_share")[1, L1_ENT] == pytest.approx(1.0)
    # its v is float32 rounding, heavy-tailed by chance: min_var_ratio keeps it from being called a suppressor
    assert r.stat("var_ratio")[1, L1_ENT] < 1e-9
    (pred,), (supp,) = r.records("prediction"), r.records("suppression")
    assert (pred["layer"], pred["neuron"]) == (1, L1_PRED) and sorted(pred["promoted"][:3]) == PRED_TOKENS
    assert (supp["layer"], supp["neuron"]) == (1, L1_SUPP) and sorted(supp["suppressed"][:3]) == PRED_TOKENS
    assert pred["score"] == pytest.approx(r.stat("vocab_kurtosis")[1, L1_PRED])
    assert "promoted_text" not in pred and r.scalars["tokenizer"] is None   # no tokenizer beside the checkpoint


def folded(ref):
    """The processed unembedding and output weights, by hand in numpy float64 from the raw checkpoint."""
    from safetensors.numpy import load_file

    w = {k: v.astype(np.float64) for k, v in load_file(ref.path).items()}
    u = w["ln_final.w"][:, None] * w["unembed.W_U"]
    u -= u.mean(1, keepdims=True)
    outs = [w[f"blocks.{layer}.mlp.W_out"] - w[f"blocks.{layer}.mlp.W_out"].mean(1, keepdims=True)
            for layer in range(2)]
    raw = w["unembed.W_U"] - w["unembed.W_U"].mean(1, keepdims=True)
    return u, outs, raw, w


def test_vocabulary_moments_match_an_independent_float64_recomputation(tmp_path):
    ref, prompts, k_first = build(tmp_path, gains=True)
    r = analyze(ref, prompts, tmp_path)
    u, outs, _, _ = folded(ref)
    for layer in range(2):
        v = outs[layer] @ u                                                       # [neuron, vocab]
        live = v.std(1) > 0
        np.testing.assert_allclose(r.stat("vocab_mean")[layer], v.mean(1), atol=1e-9)
        np.testing.assert_allclose(r.stat("vocab_var")[layer], v.var(1), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(r.stat("vocab_skew")[layer][live], stats.skew(v[live], axis=1), rtol=1e-6)
        np.testing.assert_allclose(r.stat("vocab_kurtosis")[layer][live],
                                   stats.kurtosis(v[live], axis=1, fisher=False), rtol=1e-6)
        np.testing.assert_allclose(r.stat("w_out_norm")[layer], np.linalg.norm(outs[layer], axis=1), rtol=1e-9)


def test_folding_the_final_gain_changes_the_moments_and_is_recorded(tmp_path):
    ref, prompts, k_first = build(tmp_path, gains=True)
    r = analyze(ref, prompts, tmp_path)
    _, outs, raw, _ = folded(ref)
    unfolded = stats.kurtosis(outs[1] @ raw, axis=1, fisher=False)
    background = [n for n in range(M) if n not in (L1_PRED, L1_SUPP, L1_PART, L1_ENT)]
    gap = np.abs(r.stat("vocab_kurtosis")[1][background] - unfolded[background])
    assert gap.max() > 0.1     # the gain reshapes v: reading W_U as stored gives other moments
    rec = r.scalars["weight_processing"]
    assert rec["fold_ln"] is True and rec["norm"] == "LN" and rec["center_unembed"] is True


def test_deactivation_score_is_the_query_key_product_with_the_first_position(tmp_path):
    ref, prompts, k_first = build(tmp_path, gains=True)
    r = analyze(ref, prompts, tmp_path)
    _, outs, _, w = folded(ref)
    w_q = w["blocks.1.attn.W_Q"] * w["blocks.1.ln1.w"][None, :, None]              # [head, d_model, d_head]
    scores = np.einsum("nd,hdk,hk->nh", outs[0], w_q, k_first)                    # [neuron, head]
    assert (r.stat("deact_layer")[0, L0_DEACT], r.stat("deact_head")[0, L0_DEACT]) == (1, 0)
    assert r.stat("deact_score")[0, L0_DEACT] == pytest.approx(scores[L0_DEACT, 0], rel=1e-5)
    assert r.stat("deact_score")[0, L0_DEACT] == pytest.approx(2.0 * k_first[0] @ k_first[0], rel=1e-5)
    best = scores.argmax(1)
    pos = scores.max(1) > 0
    np.testing.assert_array_equal(r.stat("deact_head")[0], np.where(pos, best, -1))
    np.testing.assert_allclose(r.stat("deact_score")[0], np.where(pos, scores.max(1), 0.0), rtol=1e-5, atol=1e-9)
    others = np.delete(scores[:, 0], L0_DEACT)         # z: against the layer's other neurons on the same head
    assert r.stat("deact_z")[0, L0_DEACT] == pytest.approx(scores[L0_DEACT, 0] / np.sqrt((others**2).mean()),
                                                           rel=1e-4)
    assert (r.stat("deact_head")[1] == -1).all() and (r.stat("deact_score")[1] == 0).all()   # no later layer
    (rec,) = r.records("deactivation")
    assert (rec["layer"], rec["neuron"], rec["head"]) == (0, L0_DEACT, [1, 0])


def test_without_a_final_norm_no_neuron_is_an_entropy_neuron(tmp_path):
    import torch

    from interp.checkpoints.loading import build_model, save_checkpoint
    from interp.checkpoints.manifest import CheckpointRef, Processing, file_sha256

    kw = tiny_model_kwargs(d_vocab=V, d_mlp=M, n_layers=1) | {"seed": 0}
    model = build_model(kw)
    with torch.no_grad():
        model.unembed.W_U[0] = 0.0                      # direction 0 is read by no token
        model.blocks[0].mlp.W_out[0] = 0.0
        model.blocks[0].mlp.W_out[0, 0] = 10.0          # the largest neuron, all in that null direction
    path = tmp_path / "nonorm.safetensors"
    save_checkpoint(model, path)
    ref = CheckpointRef(run="nonorm", seed=0, step=0, path=path, model=kw, processing=Processing(),
                        sha256=file_sha256(path))
    prompts = PromptSet(np.zeros((2, 3), np.int64), np.full(2, -1), np.ones((2, 2), bool), ())
    r = analyze(ref, prompts, tmp_path)
    assert r.stat("null_share")[0, 0] == pytest.approx(1.0)
    assert not r.flags("entropy").any() and r.scalars["weight_processing"]["fold_ln"] is False


def test_summary_counts_per_layer_over_seeds_and_headline(tmp_path):
    from interp.analyzers.neuron_roles.summary import summarize
    from interp.report.figures import from_json

    results = []
    for seed in (0, 1):
        ref, prompts, k_first = build(tmp_path, seed=seed)
        results.append(analyze(ref, prompts, tmp_path / str(seed)))
    out = summarize(results, {})
    cell = out["per_layer"]["planted"]["0"]["prediction"][1]
    assert cell["mean"] == 1.0 and cell["per_seed"] == {"0": 1, "1": 1}
    assert out["per_run"]["planted"]["0"]["n_entropy"]["mean"] == 1.0
    labels = {row["label"] for row in out["headline"]}
    assert labels == {f"{role} neurons (all layers), step 0" for role in ROLES}
    figs = {f["name"]: from_json(f) for f in out["figures"]}
    assert set(figs) == {f"counts_{r}" for r in ROLES} | {"skew_kurtosis", "entropy_plane"}
    assert len(figs["skew_kurtosis"].panels) == 2 and len(figs["skew_kurtosis"].panels[0].x) == 2 * M
    codes = figs["skew_kurtosis"].panels[1].color
    assert codes.count(1) == 2 and codes.count(2) == 2   # one prediction, one suppression neuron per seed


def test_records_carry_decoded_tokens_where_a_tokenizer_sits_beside_the_checkpoint(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    ref, prompts, _ = build(tmp_path)
    Tokenizer(WordLevel({f"t{i}": i for i in range(V)}, unk_token="t0")).save(str(tmp_path / "tokenizer.json"))
    r = analyze(ref, prompts, tmp_path)
    (pred,) = r.records("prediction")
    assert r.scalars["tokenizer"] == "tokenizer.json"
    assert sorted(pred["promoted_text"][:3]) == [f"t{i}" for i in PRED_TOKENS]
    assert pred["suppressed_text"] == [f"t{i}" for i in pred["suppressed"]]
