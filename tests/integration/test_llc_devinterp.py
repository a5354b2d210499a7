"""interp's LLC against devinterp's (the optional ``[devinterp]`` extra; skipped without it).

Both samplers run on a bundled checkpoint with the ``stages`` analyzer's loss
(``interp.analyzers.stages.llc.prompt_loss``: mean scored next-token loss of 128-prompt batches of the training prompts,
n_beta = n / log n for all n scored predictions), at matched settings: step, localisation, inverse temperature, chains,
burn-in, draws, and one batch order (devinterp replays its batches in a fixed cycle; interp's batch index is mapped onto
the same cycle). Only the Gaussian noise differs, so the two estimates must agree within the chains' spread. The update
rule itself is checked exactly, one step of each against the formula in ``interp/llc.py``'s docstring.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow   # devinterp's import and its chains: seconds

pytest.importorskip("devinterp")
sampling = pytest.importorskip("devinterp.slt.sampling")

BATCH, EPS, GAMMA, CHAINS, BURNIN, DRAWS = 128, 1e-4, 100.0, 4, 5, 15


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batches of 128 three-token prompts are too small for two intra-op threads: on a busy 2-core machine the
    threads' waiting made the 80 SGLD steps 20x slower (13 s instead of 0.5 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def problem(bundled, tmp_path_factory):
    """The last checkpoint of the modular-addition run, seed 0, with its training prompts (as ``stages`` builds
    them) and the stages loss over its full 128-prompt batches (devinterp drops a last partial batch)."""
    from interp.activations.cache import CacheSettings
    from interp.analyzers.stages.llc import prompt_loss
    from interp.prompts.source import PromptSource
    from interp.runner.context import Context, ContextSettings

    ref = max(bundled.refs(run="modadd", seed=0), key=lambda r: r.step)
    ctx = Context(ContextSettings(CacheSettings(tmp_path_factory.mktemp("cache")), "cpu"))
    model = ctx.model(ref)
    prompts = ctx.prompts(ref, PromptSource(n_background=256, split="train", seed=0))
    loss = prompt_loss(model, prompts, BATCH, seed=0)
    full = [b for b in loss.batches if len(b) == BATCH]
    assert len(full) >= 8
    return model, prompts, loss, full


def test_one_sgld_step_is_the_same_update(problem):
    """w' = w - eps/2 (n_beta grad + gamma (w - w*)) + sqrt(eps) xi, in interp (replaying its noise generator) and in
    devinterp's default sampler ``SGMCMC.sgld`` (given the same noise through ``noise_generator``), from a point
    w != w* so that the localisation term is exercised. A large step (1e-2: one step cannot diverge) and a shift of
    every weight by 1e-2 make both drift terms far larger than the tolerance."""
    from devinterp.optim import SGMCMC

    from interp.analyzers.stages.llc import SGLDConfig, estimate_llc

    _, _, loss, _ = problem
    params, eps, tol = loss.params, 1e-2, 1e-6
    n_beta = loss.n / math.log(loss.n)
    w_star = [p.detach().clone() for p in params]
    seen = []

    def recording(i):
        seen.append([p.detach().clone() for p in params])
        return loss.loss_fn(0)

    def step(w, w0, g, xi):
        return w - 0.5 * eps * (n_beta * g + GAMMA * (w - w0)) + math.sqrt(eps) * xi

    try:
        with torch.no_grad():     # start away from w*: shift every weight
            for p in params:
                p.add_(1e-2)
        start = [p.detach().clone() for p in params]
        grads = torch.autograd.grad(loss.loss_fn(0), params)
        assert max(float((0.5 * eps * n_beta * g).abs().max()) for g in grads) > 100 * tol
        assert 0.5 * eps * GAMMA * 1e-2 > 100 * tol
        # interp localises at the weights it starts from: two steps, the second with w != w*. ``seen``: the weights
        # at the loss at w*, then at each step
        estimate_llc(params, recording, loss.n, 1, SGLDConfig(eps, GAMMA, n_chains=1, n_burnin=1, n_draws=2, seed=3))
        gen = torch.Generator().manual_seed(3)
        for got, w, g in zip(seen[2], start, grads):
            torch.testing.assert_close(got, step(w, w, g, torch.randn(w.shape, generator=gen)), rtol=0, atol=tol)
        with torch.no_grad():
            for p, w in zip(params, seen[2]):
                p.copy_(w)
        g1 = torch.autograd.grad(loss.loss_fn(0), params)
        for got, w, w0, g in zip(seen[3], seen[2], start, g1):
            torch.testing.assert_close(got, step(w, w0, g, torch.randn(w.shape, generator=gen)), rtol=0, atol=tol)
        # devinterp: localised at w* (the weights when the optimizer is made), stepping from ``start``
        with torch.no_grad():
            for p, w0 in zip(params, w_star):
                p.copy_(w0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = SGMCMC.sgld(params, lr=eps, localization=GAMMA, nbeta=n_beta)
        with torch.no_grad():
            for p, w in zip(params, start):
                p.copy_(w)
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step(noise_generator=torch.Generator().manual_seed(5))
        gen = torch.Generator().manual_seed(5)
        for p, w, w0, g in zip(params, start, w_star, grads):
            xi = torch.normal(mean=0.0, std=1.0, size=w.shape, generator=gen)
            torch.testing.assert_close(p.detach(), step(w, w0, g, xi), rtol=0, atol=tol)
    finally:
        with torch.no_grad():
            for p, w0 in zip(params, w_star):
                p.copy_(w0)
                p.grad = None


def devinterp_llc(model, prompts, loss, full, tmp_path) -> tuple[np.ndarray, np.ndarray, float]:
    """devinterp's chains on the same loss: the dataset is the full batches' rows in order (no shuffling, so its
    cycle is batches 0, 1, ..., K-1, 0, ...), and ``loss_fn`` returns per-prediction losses weighted so that each
    batch's mean over [batch, pos - 1] is the stages loss (mean over the scored predictions only)."""
    from devinterp.slt.llc import compute_llc

    rows = np.concatenate(full)
    tokens = torch.as_tensor(prompts.tokens[rows]).long()
    mask = torch.as_tensor(prompts.loss_mask[rows])

    def loss_fn(m, ids):
        # which batch this is: the cycle is fixed, so find it by content (13 comparisons of 128 x 3 tokens)
        start = next(i for i in range(0, len(tokens), BATCH) if torch.equal(tokens[i:i + len(ids)], ids))
        m_b = mask[start:start + len(ids)]
        lp = torch.log_softmax(m(ids)[:, :-1].float(), dim=-1)
        nll = -lp.gather(-1, ids[:, 1:, None])[..., 0]
        return nll * m_b * (m_b.numel() / m_b.sum())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = sampling.sample(model, [{"input_ids": t} for t in tokens], {}, lr=EPS,
                                  n_beta=loss.n / math.log(loss.n), localization=GAMMA, num_chains=CHAINS,
                                  num_burnin_steps=BURNIN, num_draws=DRAWS, batch_size=BATCH, shuffle=False,
                                  num_init_loss_batches=len(full), device="cpu", output_path=tmp_path / "s.zarr",
                                  loss_fn=loss_fn)
        res = compute_llc(samples)
    n_beta = loss.n / math.log(loss.n)
    trace = res.loss_trace.values                                     # [chain, step], burn-in included
    init = float(res.init_loss)
    return n_beta * (trace[:, BURNIN:].mean(1) - init), trace, init


def test_interp_and_devinterp_agree_within_the_chains_spread(problem, tmp_path):
    from interp.analyzers.stages.llc import SGLDConfig, estimate_llc

    model, prompts, loss, full = problem
    k, steps = len(full), BURNIN + DRAWS
    calls = []

    def cycled(i):
        # interp asks for batches 0..K-1 once (the loss at w*), then one random index per step: replace those by
        # devinterp's cycle, restarted for every chain
        c = len(calls)
        calls.append(i)
        return loss.loss_fn(i if c < k else ((c - k) % steps) % k)

    ours = estimate_llc(loss.params, cycled, loss.n, k, SGLDConfig(EPS, GAMMA, CHAINS, BURNIN, DRAWS, seed=0))
    theirs, trace, init = devinterp_llc(model, prompts, loss, full, tmp_path)
    # the same loss at w* and, before any noise, the same first batch
    assert init == pytest.approx(ours["init_loss"], rel=1e-5)
    np.testing.assert_allclose(trace[:, 0], ours["trace"][:, 0], rtol=1e-5)
    a = np.asarray(ours["chain_llcs"])
    assert ours["diverged"] == 0 and len(a) == CHAINS and np.isfinite(theirs).all()
    spread = math.sqrt((a.var(ddof=1) + theirs.var(ddof=1)) / 2)
    assert spread > 0
    assert abs(a.mean() - theirs.mean()) <= 3 * spread * math.sqrt(2 / CHAINS), (a, theirs)
    # devinterp's own figure keeps the burn-in in the mean: lower, since the loss climbs from w* during burn-in
    with_burnin = (loss.n / math.log(loss.n)) * (trace.mean(1) - init)
    assert with_burnin.mean() < theirs.mean()
