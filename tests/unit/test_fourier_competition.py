import numpy as np
import pytest

from interp.analyzers.fourier_competition.summary import auroc
from interp.maths.manifolds import embedding_spectrum, key_frequencies, surviving


def test_spectrum_against_a_brute_force_dft():
    p, d = 59, 7
    w = np.random.default_rng(0).normal(size=(p, d))
    c = w - w.mean(0)
    ranks = np.arange(p)
    expect = [np.linalg.norm([(c[:, j] * np.exp(-2j * np.pi * k * ranks / p)).sum() for j in range(d)])
              for k in range(1, (p - 1) // 2 + 1)]
    np.testing.assert_allclose(embedding_spectrum(w), expect, rtol=1e-10)


def test_planted_circles_are_the_survivors():
    p, rng = 59, np.random.default_rng(1)
    t = 2 * np.pi * np.arange(p) / p
    w = np.zeros((p, 8))
    w[:, 0], w[:, 1] = np.cos(3 * t), np.sin(3 * t)
    w[:, 2], w[:, 3] = 0.7 * np.cos(17 * t), 0.7 * np.sin(17 * t)
    w += 0.02 * rng.normal(size=w.shape)
    s = embedding_spectrum(w)
    assert set(np.flatnonzero(surviving(s)) + 1) == {3, 17}
    assert key_frequencies(w)[0] == [3, 17]        # strongest first
    assert not surviving(embedding_spectrum(rng.normal(size=(p, 64)))).any()   # no circle in a random embedding


def test_auroc_against_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, size=60).astype(float)     # many ties
    labels = rng.random(60) < 0.3
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(auroc(scores, np.zeros(60, bool)))



