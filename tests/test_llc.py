import numpy as np
import pytest
import torch

from interp.llc import SGLDConfig, estimate_llc


def regression(d, n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, generator=g, dtype=torch.float64) + torch.randn(n, generator=g, dtype=torch.float64)
    w = torch.linalg.lstsq(x, y[:, None]).solution[:, 0].clone().requires_grad_(True)   # w*: the minimum
    return x, y, w


@pytest.mark.parametrize("d", [2, 6])
def test_llc_of_a_regular_model_is_half_its_dimension(d):
    """Linear regression with unit Gaussian noise (loss = negative log-likelihood) is regular: lambda = d / 2."""
    x, y, w = regression(d)
    before = w.detach().clone()
    out = estimate_llc([w], lambda i: 0.5 * ((y - x @ w) ** 2).mean(), n=len(y), n_batches=1,
                       config=SGLDConfig(eps=5e-4, n_chains=4, n_burnin=200, n_draws=600))
    assert out["diverged"] == 0 and len(out["chain_llcs"]) == 4
    assert out["llc"] == pytest.approx(d / 2, rel=0.2)
    assert torch.equal(w.detach(), before)          # w* restored


def test_singular_direction_lowers_the_llc():
    """y = a * b * x with true product 0: at a = b = 0 the zero set of the loss is a cross, a singular point with
    lambda = 1/2, below the regular count d/2 = 1 of two parameters."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, generator=g, dtype=torch.float64)
    y = torch.randn(2000, generator=g, dtype=torch.float64)          # true product 0: the singular point
    a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    out = estimate_llc([a, b], lambda i: 0.5 * ((y - a * b * x) ** 2).mean(), n=2000, n_batches=1,
                       config=SGLDConfig(eps=5e-4, n_chains=4, n_burnin=200, n_draws=600))
    assert out["llc"] < 0.75      # a regular 2-parameter model would give 1.0


def test_divergence_is_reported_not_averaged():
    x, y, w = regression(3)
    out = estimate_llc([w], lambda i: 0.5 * ((y - x @ w) ** 2).mean(), n=len(y), n_batches=1,
                       config=SGLDConfig(eps=5.0, n_chains=2, n_burnin=5, n_draws=5))
    assert out["diverged"] == 2 and np.isnan(out["llc"])
