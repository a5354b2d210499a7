import numpy as np
import torch

from interp.activations.cache import CacheSettings
from interp.analyzers.base import Unit
from interp.analyzers.universal_neurons.analyzer import UniversalNeurons, excess
from interp.analyzers.universal_neurons.cross_seed import (
    cross_seed_correlations,
    haar_rotation,
    rotation,
)
from interp.checkpoints.loading import SLOT, load_ref, save_checkpoint
from interp.checkpoints.manifest import file_sha256
from interp.prompts.source import PromptSource
from interp.runner.context import Context, ContextSettings


def chunked(per_seed, sizes, n_layers):
    """``chunks`` for cross_seed_correlations: per seed a [token, layer * d] array, cut at ``sizes``."""
    d = per_seed[0].shape[1] // n_layers

    def chunks(keys):
        start = 0
        for size in sizes:
            yield {(s, l): per_seed[s][start:start + size, l * d:(l + 1) * d] for s, l in keys}
            start += size

    return chunks


def test_haar_rotation_is_orthogonal():
    q = haar_rotation(16, np.random.default_rng(0))
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-12)


def test_streaming_equals_corrcoef_with_uneven_chunks():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, 6))
    x = np.abs(z @ rng.normal(size=(6, 8))) + 3
    y = np.abs(z @ rng.normal(size=(6, 8)))
    out = cross_seed_correlations(chunked([x.astype(np.float32), y.astype(np.float32)], [7, 1500, 1, 1492], 2),
                                  n_seeds=2, n_layers=2, d=4)
    ref = np.corrcoef(x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64),
                      rowvar=False)[:8, 8:]
    np.testing.assert_allclose(out["max_corr"][0, 1], ref.max(1), atol=1e-6)
    np.testing.assert_allclose(out["max_corr"][1, 0], ref.max(0), atol=1e-6)
    np.testing.assert_array_equal(out["best_match"][0, 1], ref.argmax(1))
    np.testing.assert_array_equal(out["best_match"][1, 0], ref.argmax(0))


def test_blocks_in_small_passes_equal_brute_force():
    """Three seeds, three layers, passes of one block at a time (a fresh read of the chunks each): every pair's
    maxima, best matches (both directions), rotated baselines and per-layer matchings against float64 brute
    force."""
    from itertools import permutations

    rng = np.random.default_rng(5)
    n_layers, d = 3, 4
    z = rng.normal(size=(2000, 5))
    xs = [np.abs(z @ rng.normal(size=(5, n_layers * d)) + rng.normal(size=(2000, n_layers * d))).astype(np.float32)
          for _ in range(3)]
    chunks = chunked(xs, [600, 1, 1399], n_layers)
    one = cross_seed_correlations(chunks, 3, n_layers, d, seed=4, matching=True)
    out = cross_seed_correlations(chunks, 3, n_layers, d, seed=4, matching=True, memory_bytes=d * d * 8 * 1.5)
    for key in ("max_corr", "baseline_max", "matched_corr", "best_match"):
        np.testing.assert_array_equal(out[key], one[key])
    for a, b in permutations(range(3), 2):
        c = np.corrcoef(xs[a].astype(np.float64), xs[b].astype(np.float64), rowvar=False)[:12, 12:]
        np.testing.assert_allclose(out["max_corr"][a, b], c.max(1), atol=1e-6)
        np.testing.assert_array_equal(out["best_match"][a, b], c.argmax(1))
        yb = np.concatenate([xs[b][:, l * d:(l + 1) * d].astype(np.float64) @ rotation(4, b, l, d)
                             for l in range(n_layers)], 1)
        cb = np.corrcoef(xs[a].astype(np.float64), yb, rowvar=False)[:12, 12:]
        np.testing.assert_allclose(out["baseline_max"][a, b], cb.max(1), atol=1e-6)
        for l in range(n_layers):   # brute-force matching: the best of all 4! permutations
            blk = c[l * d:(l + 1) * d, l * d:(l + 1) * d]
            best = max(permutations(range(d)), key=lambda p: sum(blk[i, p[i]] for i in range(d)))
            np.testing.assert_allclose(out["matched_corr"][a, b, l * d:(l + 1) * d],
                                       [blk[i, best[i]] for i in range(d)], atol=1e-6)


def test_rotated_baseline_from_sums_survives_large_means():
    """The baseline comes from the real block's sums and each input's Gram matrix (no rotated pass); with means
    100 and 200 times the spread, raw sums would lose every digit. Against float64 brute force on rotated
    copies."""
    rng = np.random.default_rng(9)
    d = 8
    z = rng.normal(size=(5000, 3))
    x = (100.0 + np.abs(z @ rng.normal(size=(3, d)) + 0.5 * rng.normal(size=(5000, d)))).astype(np.float32)
    y = (-100.0 + 0.5 * (z @ rng.normal(size=(3, d)) + rng.normal(size=(5000, d)))).astype(np.float32)
    out = cross_seed_correlations(chunked([x, y], [1000, 3000, 1000], 1), n_seeds=2, n_layers=1, d=d, seed=3)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for a, b, (u, v) in ((0, 1, (x64, y64)), (1, 0, (y64, x64))):
        cb = np.corrcoef(u, v @ rotation(3, b, 0, d), rowvar=False)[:d, d:]
        np.testing.assert_allclose(out["baseline_max"][a, b], cb.max(1), atol=1e-6)
        c = np.corrcoef(u, v, rowvar=False)[:d, d:]
        np.testing.assert_allclose(out["max_corr"][a, b], c.max(1), atol=1e-6)


def test_rotated_copy_has_no_excess_correlation():
    """Seed b's neurons are a random rotation of seed a's: no neuron has a privileged partner, so the real max
    correlation is what a rotation gives, and excess is about 0."""
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=(20000, 32)).astype(np.float32)
    y = (x @ haar_rotation(32, rng)).astype(np.float32)
    out = cross_seed_correlations(chunked([x, y], [4096] * 5, 1), 2, 1, 32, seed=3)
    _, _, exc = excess(out["max_corr"], out["baseline_max"])
    assert abs(exc.mean()) < 0.05


def test_dead_neurons_are_defined_and_not_universal():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    x[:, 0] = 0.0
    out = cross_seed_correlations(chunked([x, x.copy()], [200, 300], 1), 2, 1, 4)
    assert np.isfinite(out["max_corr"][0, 1]).all() and out["max_corr"][0, 1, 0] == 0
    np.testing.assert_allclose(out["max_corr"][0, 1, 1:], 1, atol=1e-6)


def permuted_copy(model, perm):
    """The same function with MLP neurons relabelled: neuron i of the copy is neuron perm[i] of the original."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        m.blocks[0].mlp.W_in.copy_(model.blocks[0].mlp.W_in[:, perm])
        m.blocks[0].mlp.b_in.copy_(model.blocks[0].mlp.b_in[perm])
        m.blocks[0].mlp.W_out.copy_(model.blocks[0].mlp.W_out[perm])
    return m


def test_permuted_copy_matches_every_neuron_at_its_permuted_index(wide_ref, tmp_path):
    from dataclasses import replace

    model = load_ref(wide_ref, device="cpu")
    perm = np.random.default_rng(0).permutation(model.cfg.d_mlp)
    path = tmp_path / "perm.safetensors"
    save_checkpoint(permuted_copy(model, perm), path)
    other = replace(wide_ref, seed=99, path=path, sha256=file_sha256(path), size=path.stat().st_size)
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu", PromptSource(n_background=128)))
    analyzer = UniversalNeurons()
    for ref in (wide_ref, other):
        ctx.ensure(ref, analyzer.needs(ref))
    r = analyzer.run(Unit(analyzer.name, (wide_ref, other)), ctx)
    SLOT.clear()
    alive = r.arrays["max_corr"][0, 1, 0] > 0                         # dead neurons correlate with nothing
    assert alive.mean() > 0.5
    # neuron perm[i] of the original is neuron i of the copy
    np.testing.assert_array_equal(r.arrays["best_match"][1, 0, 0][alive[perm]], perm[alive[perm]])
    # a float32 forward pass of a relabelled net
    np.testing.assert_allclose(r.arrays["max_corr"][0, 1, 0][alive], 1, atol=5e-5)
    np.testing.assert_allclose(r.arrays["matched_corr"][0, 1, 0][alive], 1, atol=5e-5)
    assert r.arrays["excess_corr"][0, 0][alive].mean() > 0.3














