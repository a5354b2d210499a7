"""universal-lineage on a planted series: one neuron per seed starts reading a feature every seed shares at a known
step; the lock-in and identity steps must be that step, for exactly those neurons, and the seeds must agree.
The lineage arithmetic is checked against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from interp.analyzers.universal_lineage import lineage as L

SEEDS, STEPS, BORN = (0, 1, 2), (0, 10, 20, 30), 2           # the planted feature is read from STEPS[BORN] on
D_MLP, VOCAB = 64, 256
KW = dict(n_layers=1, d_model=32, d_mlp=D_MLP, n_heads=1, d_head=8, n_ctx=8, d_vocab=VOCAB, act_fn="relu",
          normalization_type=None)


def planted_neuron(seed: int) -> int:
    return (5 + 7 * seed) % D_MLP                             # a different index in every seed: partners matter


def write_series(root):
    """Seeds whose embeddings share one direction (dim 0: a fixed value per token) and are otherwise their own;
    no neuron reads dim 0 except the planted one, from step STEPS[BORN]. Attention and positions write nothing,
    so every activation is a function of its own token."""
    import torch

    from interp.checkpoints.loading import build_model, save_checkpoint
    from interp.checkpoints.manifest import file_sha256

    shared = np.random.default_rng(123).normal(size=VOCAB)
    checkpoints = []
    for seed in SEEDS:
        rng = np.random.default_rng(1000 + seed)
        w_e = rng.normal(size=(VOCAB, KW["d_model"]))
        w_e[:, 0] = shared
        w_in = rng.normal(size=(KW["d_model"], D_MLP)) / np.sqrt(KW["d_model"])
        w_in[0] = 0.0
        for i, step in enumerate(STEPS):
            model = build_model({**KW, "seed": seed})
            col = np.zeros(KW["d_model"])
            if i >= BORN:
                col[0] = 1.0
            else:                                             # a random reading of the seed's own dims, new each step
                col[1:] = np.random.default_rng([seed, step]).normal(size=KW["d_model"] - 1) / np.sqrt(KW["d_model"])
            w = w_in.copy()
            w[:, planted_neuron(seed)] = col
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "attn" in name or name.endswith("b_in") or name == "pos_embed.W_pos":
                        p.zero_()
                model.W_E.copy_(torch.tensor(w_e, dtype=torch.float32))
                model.blocks[0].mlp.W_in.copy_(torch.tensor(w, dtype=torch.float32))
            path = root / f"seed{seed}" / f"step{step:06d}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(model, path)
            checkpoints.append({"seed": seed, "step": step, "path": str(path.relative_to(root)),
                                "sha256": file_sha256(path), "size": path.stat().st_size})
    manifest = {"schema_version": 1, "runs": [{"name": "planted", "format": "safetensors", "model": KW,
                                                "checkpoints": checkpoints}]}
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    tokens = np.random.default_rng(7).integers(0, VOCAB, size=(256, KW["n_ctx"]))
    np.save(root / "tokens.npy", tokens)
    return root / "manifest.yaml", root / "tokens.npy"


@pytest.fixture(scope="module")
def lineage(tmp_path_factory):
    import interp
    from interp.prompts.source import PromptSource

    root = tmp_path_factory.mktemp("planted_lineage")
    manifest, tokens = write_series(root)
    report = interp.analyze(manifest, analyzers=["universal-lineage"], options=interp.RunOptions(
        out_dir=root / "out", progress=False, workers=1, prompts=PromptSource(tokens_file=tokens)))
    from interp.api import load_result

    return report, load_result(root / "out" / "universal-lineage" / "planted" / "series.json")


def test_reading_universal_neurons_adds_it_and_runs_it_first(lineage):
    report, _ = lineage
    assert set(report.summaries) == {"universal-lineage", "universal-neurons"}
    assert report.summaries["universal-neurons"]["units"] == len(STEPS)
    assert report.summaries["universal-lineage"]["units"] == 1


def test_planted_neurons_lock_in_at_the_planted_step_and_nothing_else_is_universal(lineage):
    _, r = lineage
    assert r.steps == list(STEPS)
    uni = r.arrays["universal"][-1, :, 0]                                 # [seed, neuron] at the last step
    expected = np.zeros_like(uni)
    for a, seed in enumerate(SEEDS):
        expected[a, planted_neuron(seed)] = True
    np.testing.assert_array_equal(uni, expected)
    lock, ident = r.arrays["lock_in_index"][:, 0], r.arrays["identity_index"][:, 0]
    np.testing.assert_array_equal(lock[expected], BORN)
    np.testing.assert_array_equal(ident[expected], BORN)
    assert (lock[~expected] == -1).all() and (ident[~expected] == -1).all()
    # the final partners are the planted neurons of the other seeds
    partner = r.arrays["final_partner"][:, :, 0]
    for a, sa in enumerate(SEEDS):
        for b, sb in enumerate(SEEDS):
            if a != b:
                assert partner[a, b, planted_neuron(sa)] == planted_neuron(sb)
    # every mutual pair agrees on the step; the counts per step index hold all of them at BORN
    assert r.scalars["mutual_pairs"] == len(SEEDS) * (len(SEEDS) - 1) // 2
    assert r.scalars["same_step_share"] == 1.0
    assert r.scalars["lock_in_counts"] == [[0] * BORN + [len(SEEDS)] + [0] * (len(STEPS) - BORN - 1)]
    assert r.scalars["order"] == {"identity_first": 0, "same_step": len(SEEDS), "universal_first": 0}


def test_partner_correlations_agree_with_a_float64_recomputation_and_universal_neurons(lineage, tmp_path):
    """Correlations recomputed in float64 numpy from the models' own activations, and the pass's check against
    universal-neurons' max correlations (two passes over the same tokens)."""
    from interp.checkpoints.loading import load_ref
    from interp.checkpoints.manifest import load_manifest

    report, r = lineage
    series = load_manifest(report.out_dir.parent / "manifest.yaml")
    tokens = np.load(report.out_dir.parent / "tokens.npy")
    import torch

    acts = {}
    for ref in series.refs():
        model = load_ref(ref, device="cpu")
        _, cache = model.run_with_cache(torch.tensor(tokens), names_filter="blocks.0.mlp.hook_post")
        # a token file's windows start mid-text: position 0 is left out of the statistics (universal-neurons' filter)
        post = cache["blocks.0.mlp.hook_post"][:, 1:]
        acts[(SEEDS.index(ref.seed), ref.step)] = post.reshape(-1, D_MLP).double().numpy()
    partner = r.arrays["final_partner"][:, :, 0]
    got_final, got_self = r.arrays["final_partner_corr"][:, :, :, 0], r.arrays["self_corr"][:, :, 0]

    def corr(x, y):
        x, y = x - x.mean(), y - y.mean()
        d = np.sqrt((x * x).sum() * (y * y).sum())
        return float((x * y).sum() / d) if d > 0 else 0.0

    rng = np.random.default_rng(0)
    for i, step in enumerate(STEPS):
        for a in range(len(SEEDS)):
            for n in rng.choice(D_MLP, 8, replace=False).tolist() + [planted_neuron(SEEDS[a])]:
                for b in range(len(SEEDS)):
                    if b != a:
                        want = corr(acts[(a, step)][:, n], acts[(b, step)][:, partner[a, b, n]])
                        assert abs(got_final[i, a, b, n] - want) < 1e-5
                want = corr(acts[(a, step)][:, n], acts[(a, STEPS[-1])][:, n])
                assert abs(got_self[i, a, n] - want) < 1e-5
    assert r.scalars["max_corr_gap"] < 1e-5


def test_bootstrap_interval_brackets_the_fraction_and_is_tight_where_nothing_is_near_the_threshold(lineage):
    _, r = lineage
    frac, lo, hi = (r.arrays[k][:, 0] for k in ("universal_fraction", "universal_fraction_lo",
                                                "universal_fraction_hi"))
    np.testing.assert_allclose(frac, [0, 0, 1 / D_MLP, 1 / D_MLP])
    assert (lo <= frac + 1e-12).all() and (frac <= hi + 1e-12).all()
    np.testing.assert_allclose(lo[BORN:], 1 / D_MLP)                     # correlation 1: no draw loses it
    np.testing.assert_allclose(hi[:BORN], 0)


def test_settled_index_matches_a_loop():
    rng = np.random.default_rng(1)
    ok = rng.random((6, 50)) < 0.7
    want = []
    for j in range(50):
        k = -1
        for i in range(6):
            if ok[i:, j].all():
                k = i
                break
        want.append(k)
    np.testing.assert_array_equal(L.settled_index(ok), want)


def test_excess_and_bootstrap_universal_match_loops():
    rng = np.random.default_rng(2)
    n, units, draws = 3, 7, 5
    corr, base = rng.random((2, n, n, units)), rng.random((2, n, n, units)) * 0.3
    for a in range(n):
        corr[:, a, a], base[:, a, a] = np.nan, np.nan
    got = L.excess(corr, base)
    for t in range(2):
        for a in range(n):
            others = [b for b in range(n) if b != a]
            want = np.mean([corr[t, a, b] for b in others], 0) - np.mean([base[t, a, b] for b in others], 0)
            np.testing.assert_allclose(got[t, a], want)
    d = {(a, b): rng.random((draws, units)) for a in range(n) for b in range(n) if a != b}
    flags = L.bootstrap_universal(d, base[0], 0.4, n)
    for a in range(n):
        others = [b for b in range(n) if b != a]
        for k in range(draws):
            want = np.mean([d[(a, b)][k] for b in others], 0) - np.mean([base[0, a, b] for b in others], 0) > 0.4
            np.testing.assert_array_equal(flags[k, a], want)


def test_column_pairs_equal_numpy_per_block_and_resampled():
    import torch

    from interp.maths.stats import ColumnPairs

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 4)) + 50.0                              # a large mean against the spread
    y = 0.5 * x[:, ::-1] + rng.normal(size=(3000, 4))
    index = np.array([3, 2, 1, 0])                                     # column k of x against column index[k] of y
    acc = ColumnPairs({"xy": ("x", "y", index), "xx": ("x", "x", None)}, n_blocks=3, rows=512)
    blocks = np.repeat(np.arange(3), 1000)
    for b in range(3):
        acc.add({"x": torch.tensor(x[blocks == b], dtype=torch.float32),
                 "y": torch.tensor(y[blocks == b], dtype=torch.float32)}, b)
    x32, y32 = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
    want = [np.corrcoef(x32[:, k], y32[:, index[k]])[0, 1] for k in range(4)]
    # float32 products over blocks of at most 1,024 tokens, float64 sums: r within 1e-6 of float64 throughout
    np.testing.assert_allclose(acc.correlation("xy").numpy(), want, atol=1e-6)
    np.testing.assert_allclose(acc.correlation("xx").numpy(), 1.0, atol=1e-6)
    w = torch.tensor([[2.0, 0.0, 1.0]], dtype=torch.float64)          # block 0 twice, block 2 once
    rows = np.concatenate([np.flatnonzero(blocks == 0)] * 2 + [np.flatnonzero(blocks == 2)])
    want = [np.corrcoef(x32[rows, k], y32[rows, index[k]])[0, 1] for k in range(4)]
    np.testing.assert_allclose(acc.correlation("xy", w).numpy()[0], want, atol=1e-6)
