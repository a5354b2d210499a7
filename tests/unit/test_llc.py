import numpy as np
import pytest
import torch

from interp.analyzers.stages.llc import SGLDConfig, estimate_llc


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


def sgld_llc_on_quadratic(x, eps, gamma):
    """What full-batch SGLD estimates on linear regression, exactly: the loss is the quadratic
    L(w*) + 1/2 (w - w*)' H (w - w*), H = x'x / n, and along an eigendirection of H (eigenvalue h) the step
    v <- (1 - eps k / 2) v + sqrt(eps) N(0, 1), k = n_beta h + gamma, has stationary variance 1 / (k (1 - eps k / 4)).
    So E[n_beta (L - L*)] = sum_i n_beta h_i / (2 k_i (1 - eps k_i / 4)): d/2 as eps -> 0 and gamma -> 0, inflated
    as eps approaches the divergence step 4 / k_max."""
    n = x.shape[0]
    n_beta = n / np.log(n)
    h = np.linalg.eigvalsh((x.T @ x).numpy() / n)
    k = n_beta * h + gamma
    return float(np.sum(n_beta * h / (2 * k * (1 - eps * k / 4))))


def test_sgld_matches_the_exact_answer_for_its_step_size():
    """At a step 70% of the way to divergence the estimate is ~2x d/2, as the discretised chain's stationary law
    says: step-size bias is real, and invisible to a flatness check."""
    d, gamma = 4, 1.0
    x, y, w = regression(d)
    h_max = np.linalg.eigvalsh((x.T @ x).numpy() / len(y)).max()
    eps = 0.7 * 4 / (len(y) / np.log(len(y)) * h_max + gamma)
    out = estimate_llc([w], lambda i: 0.5 * ((y - x @ w) ** 2).mean(), n=len(y), n_batches=1,
                       config=SGLDConfig(eps=eps, gamma=gamma, n_chains=4, n_burnin=100, n_draws=400))
    exact = sgld_llc_on_quadratic(x, eps, gamma)
    assert exact > 1.6 * d / 2
    assert out["llc"] == pytest.approx(exact, rel=0.15)


def test_calibration_picks_a_safe_flat_step_and_recovers_half_the_dimension():
    from interp.analyzers.stages.llc import calibrate_eps, eps_grid

    d, gamma = 6, 1.0
    x, y, w = regression(d)
    grid = eps_grid(1e-1, 1e-4, 7)          # 1e-1, 3.2e-2, 1e-2, 3.2e-3, 1e-3, 3.2e-4, 1e-4
    h_max = np.linalg.eigvalsh((x.T @ x).numpy() / len(y)).max()
    diverges_above = 4 / (len(y) / np.log(len(y)) * h_max + gamma)      # ~0.014
    cfg = SGLDConfig(gamma=gamma, n_chains=4, n_burnin=100, n_draws=300)
    cal = calibrate_eps([w], lambda i: 0.5 * ((y - x @ w) ** 2).mean(), len(y), 1, cfg, grid)
    # the two steps above the divergence step are rejected, every chain diverging; 1e-2 is stable
    assert grid[1] > diverges_above > grid[2]
    assert list(cal.diverged[:3]) == [4, 4, 0]
    # ceiling = 1e-2 / 10: 3.2e-3 is skipped, 1e-3 is flat and chosen, and nothing smaller is run
    assert cal.ceiling == pytest.approx(1e-3)
    assert list(cal.ran) == [True, True, True, False, True, False, False]
    assert cal.eps == pytest.approx(1e-3) and cal.trend[4] <= 3
    assert cal.estimate["llc"] == pytest.approx(sgld_llc_on_quadratic(x, cal.eps, gamma), rel=0.15)
    assert cal.estimate["llc"] == pytest.approx(d / 2, rel=0.2)
    assert cal.estimate["llc"] == cal.llc[4]


def test_calibration_rejects_a_grid_that_only_diverges_or_cannot_level_off():
    from interp.analyzers.stages.llc import calibrate_eps

    x, y, w = regression(3)
    loss = lambda i: 0.5 * ((y - x @ w) ** 2).mean()   # noqa: E731
    cal = calibrate_eps([w], loss, len(y), 1, SGLDConfig(n_chains=2, n_burnin=5, n_draws=10), np.array([5.0, 1.0]))
    assert list(cal.diverged) == [2, 2] and cal.index == -1 and np.isnan(cal.eps) and cal.estimate is None
    # 1e-2 is stable, so the ceiling is 1e-3; 1e-6 is far too small to mix in 60 steps (relaxation ~7,600 steps):
    # the loss still climbs over the draws, so nothing qualifies
    cal = calibrate_eps([w], loss, len(y), 1, SGLDConfig(gamma=0.0, n_chains=2, n_burnin=10, n_draws=50),
                        np.array([1e-2, 1e-6]))
    assert cal.ran.all() and cal.diverged.sum() == 0 and cal.trend[1] > 3 and cal.index == -1


def test_trace_trend_is_the_slope_t_statistic():
    from scipy.stats import linregress

    from interp.analyzers.stages.llc import trace_trend

    rng = np.random.default_rng(0)
    trace = rng.normal(size=(3, 50)) + np.linspace(0, 2, 50)      # 10 burn-in steps, then 40 draws
    fit = linregress(np.arange(40), trace[:, 10:].mean(0))
    assert trace_trend(trace, 10) == pytest.approx(abs(fit.slope / fit.stderr), rel=1e-9)
    flat = [trace_trend(rng.normal(size=(2, 40)), 0) for _ in range(200)]
    assert np.mean(np.asarray(flat) > 3) < 0.03                    # |t| with 38 dof exceeds 3 in 0.5% of cases
    assert np.isnan(trace_trend(np.array([[1.0, 2.0, np.nan, 4.0, 5.0]]), 0))
