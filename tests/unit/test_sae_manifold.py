import numpy as np
import pytest

from interp.analyzers.sae_manifold.sae_fit import (
    SAESpec,
    classify,
    encode,
    fit_sae,
    manifold_metrics,
    normalise,
    rayleigh_p,
    receptive_fields,
)
from interp.maths.manifolds import (
    circle,
    fourier_circle,
    helix,
    key_frequencies,
    sphere,
)


@pytest.fixture(scope="module")
def ring():
    m = circle(n=4096, d=32, noise=0.02, seed=0)
    return m, normalise(m.points)


@pytest.mark.parametrize("gen, dim", [(circle, 2), (helix, 3), (sphere, 3)])
def test_generators_live_in_their_subspace(gen, dim):
    m = gen(n=2000, d=16, noise=0.0, seed=1)
    assert m.basis.shape == (16, dim)
    np.testing.assert_allclose(m.basis.T @ m.basis, np.eye(dim), atol=1e-12)
    resid = m.points - (m.points - m.points.mean(0)) @ m.basis @ m.basis.T - m.points.mean(0)
    assert np.abs(resid).max() < 1e-10
    assert (m.theta >= 0).all() and (m.theta < 2 * np.pi).all()


def test_fourier_circle_and_key_frequencies_recover_a_planted_circle():
    p, k = 31, 5
    rng = np.random.default_rng(0)
    ranks = np.arange(p)
    w_e = np.stack([np.cos(2 * np.pi * k * ranks / p), np.sin(2 * np.pi * k * ranks / p)], 1) @ rng.normal(size=(2, 8))
    keys, s = key_frequencies(w_e + 0.01 * rng.normal(size=w_e.shape), max_freqs=3)
    assert keys == [k]
    c = rng.integers(0, p, 500)
    plane = np.linalg.qr(rng.normal(size=(8, 2)))[0]
    acts = np.stack([np.cos(2 * np.pi * k * c / p), np.sin(2 * np.pi * k * c / p)], 1) @ plane.T
    m = fourier_circle(acts + 0.01 * rng.normal(size=acts.shape), c, k, p)
    from scipy.linalg import subspace_angles

    assert np.degrees(subspace_angles(m.basis, plane).max()) < 1


def test_metrics_against_brute_force(ring):
    m, x = ring
    rng = np.random.default_rng(0)
    codes = np.maximum(rng.normal(size=(len(x), 6)), 0)
    codes[:, 5] = 0                                      # a dead latent
    w_dec = rng.normal(size=(6, x.shape[1]))
    w_dec[:2] = m.basis.T                                # two latents in the circle's plane
    recon = codes @ w_dec
    fit = manifold_metrics(x, codes, recon, w_dec, m.theta, m.basis)
    met = fit.metrics
    assert met["explained_variance"] == pytest.approx(
        1 - np.sum((x - recon) ** 2) / np.sum((x - x.mean(0)) ** 2))
    assert met["l0"] == pytest.approx(np.mean([(row > 0).sum() for row in codes]))
    assert met["latents_on_manifold"] == 2 and met["subspace_capture"] == pytest.approx(1.0)
    assert met["coverage"] == pytest.approx(np.mean((codes[:, :2] > 0).any(1)))
    rf = receptive_fields(codes, m.theta)
    j = 0
    z = np.sum(codes[:, j] * np.exp(1j * m.theta))
    assert rf[0, j] == pytest.approx(np.mod(np.angle(z), 2 * np.pi))
    assert np.isnan(rf[1, 5])


def test_rayleigh():
    rng = np.random.default_rng(0)
    assert rayleigh_p(rng.uniform(0, 2 * np.pi, 50)) > 0.01
    assert rayleigh_p(rng.normal(1.0, 0.2, 50)) < 1e-6


def test_wide_topk_sae_tiles_the_circle(ring):
    m, x = ring
    sae = fit_sae(x, SAESpec.parse("topk:64:1"), steps=1500)
    codes, recon, w_dec = encode(sae, x)
    fit = manifold_metrics(x, codes, recon, w_dec, m.theta, m.basis)
    met = fit.metrics
    assert met["coverage"] >= 0.95
    assert met["latents_on_manifold"] > 8
    assert rayleigh_p(fit.receptive_fields[0]) == met["centre_uniformity_p"] >= 0.01
    assert met["fit_kind"] == "tiling"


def test_two_latent_budget_captures_the_subspace(ring):
    m, x = ring
    sae = fit_sae(x, SAESpec.parse("topk:2:2"), steps=1500)
    codes, recon, w_dec = encode(sae, x)
    fit = manifold_metrics(x, codes, recon, w_dec, m.theta, m.basis)
    met = fit.metrics
    assert met["latents_on_manifold"] == 2 and met["subspace_capture"] >= 0.9
    assert met["fit_kind"] == "subspace"


def test_classify_rules():
    base = dict(latents_on_manifold=2, subspace_capture=0.95, coverage=1.0, median_rf_width=1.0,
                centre_uniformity_p=0.5)
    assert classify(base, 2) == "subspace"
    assert classify(base | {"latents_on_manifold": 20, "median_rf_width": 0.3}, 2) == "tiling"
    assert classify(base | {"latents_on_manifold": 20, "median_rf_width": 2.0}, 2) == "dilution"
    assert classify(base | {"latents_on_manifold": 0}, 2) == "absent"
    with pytest.raises(Exception, match="kind:d_sae:param"):
        SAESpec.parse("topk-16")


@pytest.mark.slow   # UMAP's first fit in a process JIT-compiles for about 20 s
def test_umap_view_keeps_neighbours():
    from sklearn.manifold import trustworthiness

    from interp.analyzers.sae_manifold.analyzer import umap2

    m = circle(n=600, d=16, noise=0.01, seed=2)
    emb = umap2(m.points, seed=0)
    assert emb.shape == (600, 2) and np.isfinite(emb).all()
    assert trustworthiness(m.points, emb, n_neighbors=10) > 0.9




def test_a_latent_counts_by_what_it_writes_from_the_data_mean(ring):
    """A k=1 'ray' SAE with its offset far off the circle's plane: latent j writes b + w_j = the centroid of arc j.
    Measured by w_j alone (offset=None) no latent lies in the plane; measured from the data mean, all 12 tile it."""
    m, x = ring
    n_arcs = 12
    arc = np.minimum((m.theta / (2 * np.pi) * n_arcs).astype(int), n_arcs - 1)
    codes = np.zeros((len(x), n_arcs))
    codes[np.arange(len(x)), arc] = 1.0
    normal = np.linalg.qr(np.concatenate([m.basis, np.eye(x.shape[1])[:, :1]], 1))[0][:, 2]   # off the plane
    b = 2.0 * normal
    centroids = np.stack([x[arc == j].mean(0) for j in range(n_arcs)])
    w_dec = centroids - b
    recon = codes @ w_dec + b
    fit = manifold_metrics(x, codes, recon, w_dec, m.theta, m.basis, offset=b)
    for j in range(n_arcs):   # brute force: the written point seen from the data mean, its share in the plane
        u = centroids[j] - x.mean(0)
        assert fit.in_plane[j] == pytest.approx(np.sum((m.basis.T @ u) ** 2) / np.sum(u**2), rel=1e-9)
    assert fit.metrics["latents_on_manifold"] == n_arcs and fit.metrics["coverage"] == 1.0
    assert fit.metrics["median_rf_width"] == pytest.approx(2 * np.pi / n_arcs / np.sqrt(12), rel=0.05)
    assert fit.metrics["fit_kind"] == "tiling"
    blind = manifold_metrics(x, codes, recon, w_dec, m.theta, m.basis)
    assert blind.in_plane.max() < 0.3 and blind.metrics["fit_kind"] == "absent"


@pytest.mark.parametrize("text", ["topk:8:2", "relu:8:0.3"])
def test_encode_rows_and_offset_rebuild_the_reconstruction(ring, text):
    from interp.analyzers.sae_manifold.sae_fit import decoder_offset

    _, x = ring
    sae = fit_sae(x, SAESpec.parse(text), steps=30)
    codes, recon, rows = encode(sae, x)
    np.testing.assert_allclose(codes @ rows + decoder_offset(sae), recon, atol=2e-5)
    w = sae.W_dec.detach().double().numpy()
    cos = (rows * w).sum(1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(w, axis=1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)   # TopK rescales by the decoder norm; directions are W_dec's


