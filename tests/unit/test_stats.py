"""Streaming statistics against float64 numpy on the concatenated data."""

import numpy as np
import pytest
import torch

from interp.maths.stats import RunningMoments, StreamingCorrelation


def chunks_of(x: np.ndarray, sizes):
    out, i = [], 0
    for s in sizes:
        out.append(x[i:i + s])
        i += s
    out.append(x[i:])
    return [c for c in out if len(c)]


def test_running_moments_match_numpy_with_uneven_chunks():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.gamma(2.0, 1.0, (7000, 5)), rng.normal(50, 0.01, (7000, 1))], axis=1) - 1.0
    rm = RunningMoments(6, active_threshold=0.0)
    # the last chunk (4,480 rows) spans three of the accumulator's internal 2,048-row blocks
    for c in chunks_of(x, [1, 7, 999, 13, 1500]):
        rm.update(torch.from_numpy(c.astype(np.float32)))
    r = {k: v.numpy() for k, v in rm.result().items()}
    x32 = x.astype(np.float32).astype(np.float64)  # the data as the accumulator saw it
    mu = x32.mean(0)
    d = x32 - mu
    var = (d**2).mean(0)
    np.testing.assert_allclose(r["mean"], mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["var"], var, rtol=1e-9)
    np.testing.assert_allclose(r["skew"], (d**3).mean(0) / var**1.5, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(r["kurtosis"], (d**4).mean(0) / var**2, rtol=1e-7)  # non-excess: normal -> 3
    np.testing.assert_allclose(r["act_freq"], (x32 > 0).mean(0))


def test_running_moments_leave_a_float64_input_untouched():
    x = torch.randn(5000, 3, dtype=torch.float64) + 7.0
    before = x.clone()
    RunningMoments(3).update(x)
    assert torch.equal(x, before)


def test_running_moments_constant_column_is_defined():
    rm = RunningMoments(2)
    rm.update(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    rm.update(torch.tensor([[1.0, 4.0]]))
    r = rm.result()
    assert r["var"][0] == 0 and r["skew"][0] == 0 and r["kurtosis"][0] == 0
    assert torch.isfinite(torch.stack(list(r.values()))).all()
    assert r["kurtosis"][1].item() == pytest.approx(1.5)  # {0, 2, 4}: m4 / m2^2 = (32/3) / (8/3)^2


@pytest.mark.parametrize("sizes", [[5, 17, 3000, 1, 400], [4096, 4096], [1] * 30])
def test_streaming_correlation_equals_corrcoef(sizes):
    rng = np.random.default_rng(1)
    n = sum(sizes) + 100
    z = rng.normal(size=(n, 4))
    x = np.concatenate([z, rng.normal(size=(n, 3))], axis=1)
    y = np.concatenate([z @ rng.normal(size=(4, 5)) + 0.5 * rng.normal(size=(n, 5)), rng.normal(size=(n, 2))], 1)
    x, y = x.astype(np.float32), y.astype(np.float32)
    sc = StreamingCorrelation()
    for cx, cy in zip(chunks_of(x, sizes), chunks_of(y, sizes)):
        sc.update(torch.from_numpy(cx), torch.from_numpy(cy))
    ref = np.corrcoef(x.astype(np.float64), y.astype(np.float64), rowvar=False)[:7, 7:]
    np.testing.assert_allclose(sc.result().numpy(), ref, atol=1e-6)


def test_streaming_correlation_survives_large_means():
    """mean / std >= 100: the raw-moment formula loses every digit here; the shifted one keeps 1e-5."""
    rng = np.random.default_rng(2)
    n = 20000
    base = rng.normal(size=(n, 3))
    x = (1000.0 + base * np.array([1.0, 2.0, 5.0])).astype(np.float32)
    y = (-500.0 + (base @ rng.normal(size=(3, 4))) + rng.normal(size=(n, 4))).astype(np.float32)
    sc = StreamingCorrelation()
    for cx, cy in zip(chunks_of(x, [4096] * 4), chunks_of(y, [4096] * 4)):
        sc.update(torch.from_numpy(cx), torch.from_numpy(cy))
    ref = np.corrcoef(x.astype(np.float64), y.astype(np.float64), rowvar=False)[:3, 3:]
    np.testing.assert_allclose(sc.result().numpy(), ref, atol=1e-5)
    # the naive way, for contrast: float32 raw sums are far off
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    raw = (xs.T @ ys / n - torch.outer(xs.mean(0), ys.mean(0))) / torch.outer(xs.std(0), ys.std(0))
    assert np.abs(raw.numpy() - ref).max() > 1e-3


def test_streaming_correlation_dead_neuron_is_zero_not_nan():
    sc = StreamingCorrelation()
    x = torch.zeros(100, 2)
    x[:, 1] = torch.randn(100)
    sc.update(x[:50], x[:50])
    sc.update(x[50:], x[50:])
    r = sc.result()
    assert torch.isfinite(r).all() and r[0, 0] == 0 and r[1, 1].item() == pytest.approx(1.0, abs=1e-6)
