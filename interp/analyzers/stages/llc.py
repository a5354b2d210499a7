"""Local learning coefficient (LLC) by SGLD, for any torch model and loss (Lau et al., arXiv 2308.12108; used for
stages by Hoogland et al., arXiv 2402.02364; the devinterp package's estimator, written here from its definition).

    llc = n_beta * (E_{w ~ p_loc}[L(w)] - L(w*)),    n_beta = n / log n

where p_loc(w) ~ exp(-n_beta L(w) - gamma/2 ||w - w*||^2) is the tempered posterior localised at the checkpoint w*,
sampled by SGLD:

    w <- w - (eps / 2) (n_beta grad L_batch(w) + gamma (w - w*)) + N(0, eps)

For a regular model with d parameters the LLC is d/2 (tested on linear regression); singular models give less.
The estimate depends on eps and gamma: too large an eps diverges (reported as ``diverged``: a chain whose loss becomes
non-finite or exceeds ``diverge_factor`` times the start plus one is stopped there and left out of the mean), too
small an eps does not mix within the chain. ``chain_llcs`` gives every chain's estimate, so the spread is visible, and
``trace`` every step's loss, so the burn-in can be judged. ``calibrate_eps`` chooses eps per model (below).

Against devinterp 2.0.1 (``devinterp.slt.sampling.sample`` / ``devinterp.slt.llc.llc``; its default sampler
``SGMCMC.sgld`` and the deprecated ``devinterp.optim.SGLD`` make the same step), checked by
``tests/test_llc_devinterp.py``:

- The update is the same: devinterp's ``lr`` is our ``eps``, ``localization`` our ``gamma`` (a Gaussian prior
  centred at w*, its gradient inside the eps/2 bracket, as here), and the noise is ``sqrt(lr) * noise_level *
  N(0, 1)`` with ``noise_level`` 1 by default, so the injected noise has variance eps, as here. devinterp's optional
  ``llc_weight_decay`` (a prior centred at 0), bounding box and RMSprop preconditioning have no counterpart here.
  Parameters without a gradient are left alone by devinterp's ``SGMCMC``; here they still get noise and the
  localising pull (they do not enter the loss, so the LLC is the same).
- Burn-in: devinterp's ``compute_llc`` averages the loss over *every* step, burn-in included; here the burn-in steps
  are dropped from the mean (they are in ``trace``). Both record the loss of the step's batch at the weights before
  the step.
- Inverse temperature: both call it ``n_beta`` (devinterp's optimizers spell it ``nbeta``; older devinterp releases
  took a ``temperature``). devinterp 2.0.1 has no default: ``sample`` requires it, and its helper
  ``devinterp.utils.default_nbeta(loader)`` gives m / log m for the *batch* size m (sequences). Here the default is
  n / log n for the number n of scored predictions in the whole training set (the n of the definition above), a larger
  n_beta.
- The loss at w*: devinterp averages ``num_init_loss_batches`` batches (32 by default, cycling); here, every batch
  once. Batch order: devinterp shuffles the data once, replays that order (``epoch_mode='cycle'``), and gives every
  chain the same order; here each step draws a batch uniformly at random, one stream across chains.
- devinterp's loss is a per-token tensor [batch, pos - 1] averaged over everything (next-token loss on every
  position by default); interp's stages loss scores only the masked predictions, so the cross-check passes a
  ``loss_fn`` that weights the masked positions to give the same batch mean.
- devinterp copies the model for each chain; here the parameters are perturbed in place and restored afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class SGLDConfig:
    eps: float = 1e-3
    gamma: float = 1.0         # localisation: must stay small against n_beta * the Hessian, or it biases llc down
    n_chains: int = 4
    n_burnin: int = 20
    n_draws: int = 60
    diverge_factor: float = 10.0
    seed: int = 0


def estimate_llc(params: list, loss_fn: Callable[[int], object], n: int, n_batches: int,
                 config: SGLDConfig = SGLDConfig(), init_loss: float | None = None) -> dict:
    """``loss_fn(i)``: the mean loss on batch ``i`` (0 <= i < n_batches) at the current parameter values, a torch
    scalar with a graph to ``params``; ``n``: the number of samples the loss averages over in all. The parameters
    are restored to w* afterwards. Returns ``llc`` (mean over chains that did not diverge; NaN if all did),
    ``chain_llcs``, ``diverged`` (count), ``init_loss``, ``n_beta`` and ``trace`` ([chain, step] loss at every
    step, burn-in included; NaN after a diverged chain stopped). ``init_loss``: the mean over batches of
    ``loss_fn(i)`` at w*, when the caller can compute it faster (``PromptLoss.init_loss``: a few large no-grad
    passes instead of one per mini-batch)."""
    import torch

    n_beta = n / math.log(n)
    w_star = [p.detach().clone() for p in params]
    gen = torch.Generator(device=params[0].device).manual_seed(config.seed)
    batch_rng = np.random.default_rng(config.seed)
    if init_loss is None:
        with torch.no_grad():
            init_loss = float(np.mean([float(loss_fn(i)) for i in range(n_batches)]))
    init = float(init_loss)
    limit = config.diverge_factor * (abs(init) + 1)
    n_steps = config.n_burnin + config.n_draws
    trace = np.full((config.n_chains, n_steps), np.nan)
    chain_llcs, diverged = [], 0
    try:
        for c in range(config.n_chains):
            for step in range(n_steps):
                with torch.enable_grad():
                    loss = loss_fn(int(batch_rng.integers(n_batches)))
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
                trace[c, step] = float(loss.detach())
                if not abs(trace[c, step]) <= limit:        # NaN fails too: stop, nothing after it is a sample
                    break
                with torch.no_grad():
                    for p, g, p0 in zip(params, grads, w_star):
                        drift = config.gamma * (p - p0) + (n_beta * g if g is not None else 0)
                        noise = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
                        p.add_(-0.5 * config.eps * drift + math.sqrt(config.eps) * noise)
            if np.isnan(trace[c]).any() or not abs(trace[c, -1]) <= limit:
                diverged += 1
            else:
                chain_llcs.append(n_beta * (float(trace[c, config.n_burnin:].mean()) - init))
            with torch.no_grad():
                for p, p0 in zip(params, w_star):
                    p.copy_(p0)
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, w_star):
                p.copy_(p0)
    return {"llc": float(np.mean(chain_llcs)) if chain_llcs else float("nan"), "chain_llcs": chain_llcs,
            "diverged": diverged, "init_loss": init, "n_beta": n_beta, "trace": trace}


def eps_grid(eps_max: float, eps_min: float, n: int) -> np.ndarray:
    """``n`` step sizes from ``eps_max`` down to ``eps_min``, evenly spaced in log (largest first)."""
    return np.geomspace(eps_max, eps_min, n)


def trace_trend(trace: np.ndarray, n_burnin: int) -> float:
    """Whether the loss still moves after burn-in: the t-statistic |b| / se(b) of the least-squares slope b of the
    chains' mean loss over the draws, se from the scatter about the fitted line. ``trace``: [chain, step]. At
    equilibrium the draws scatter about a level line and this is of order 1 (a |t| with draws - 2 degrees of freedom
    for uncorrelated draws; autocorrelated draws inflate it, which flags slow mixing too); a chain still climbing from
    w* (eps too small for the steps given) or escaping (eps too large) gives a large value. NaN when a chain has
    non-finite draws."""
    draws = np.asarray(trace, dtype=float)[:, n_burnin:]
    if draws.shape[1] < 4 or not np.isfinite(draws).all():
        return float("nan")
    t = np.arange(draws.shape[1], dtype=float) - (draws.shape[1] - 1) / 2
    mean = draws.mean(0)
    slope = float(t @ (mean - mean.mean()) / (t @ t))
    resid = mean - mean.mean() - slope * t
    se = math.sqrt(float(resid @ resid) / (len(t) - 2) / float(t @ t))
    return abs(slope) / se if se > 0 else (0.0 if slope == 0 else float("inf"))


@dataclass
class Calibration:
    """The outcome of ``calibrate_eps``. Per candidate ([candidate], largest eps first): ``grid``, ``ran`` (False:
    skipped, see ``calibrate_eps``), ``diverged`` chains, ``trend`` (``trace_trend``), ``llc`` (NaN where every chain
    diverged or not run), ``traces`` [candidate, chain, step] (NaN where not run). ``index``: the chosen candidate
    (-1: none qualified, ``eps`` NaN); ``estimate``: ``estimate_llc``'s output at the chosen eps (None if none)."""

    grid: np.ndarray
    ran: np.ndarray
    diverged: np.ndarray
    trend: np.ndarray
    llc: np.ndarray
    traces: np.ndarray
    ceiling: float
    index: int = -1
    estimate: dict | None = field(default=None, repr=False)

    @property
    def eps(self) -> float:
        return float(self.grid[self.index]) if self.index >= 0 else float("nan")


def calibrate_eps(params: list, loss_fn: Callable[[int], object], n: int, n_batches: int, config: SGLDConfig,
                  grid: np.ndarray, flat_tol: float = 3.0, margin: float = 10.0,
                  init_loss: float | None = None) -> Calibration:
    """Choose the SGLD step for this model from ``grid`` (a geometric grid, ``eps_grid``); every candidate runs the
    chains of ``config`` (chains, burn-in, draws, seed) with its own eps. Ours: devinterp 2.0.1 chooses nothing (its
    SGLD docstring calls hyperparameter choice "more of an art than a science" and points to a calibration notebook
    that sweeps eps and inspects loss traces; in code it only stops a chain whose loss turns NaN or inf and can
    record per-step norms of the update's parts, ``save_metrics``). This turns the notebook's reading of the traces
    (no blow-up, a trace that has levelled off after burn-in) into rules:

    - a candidate *diverges* when any chain does (``estimate_llc``);
    - it is *flat* when ``trace_trend`` <= ``flat_tol``: the least-squares slope of the chains' mean loss over the
      draws is within ``flat_tol`` standard errors of zero (the chain has levelled off after burn-in);
    - the *ceiling* is the largest candidate that did not diverge, divided by ``margin``. SGLD's stationary law is
      biased: along a direction of curvature h the loss fluctuation is inflated by 1 / (1 - eps h / 4), which is
      unbounded at the divergence step eps h = 4; a step ``margin`` times below the largest stable one keeps that
      factor under 1 / (1 - 1 / margin) (11% for 10). Flatness cannot see this bias: a chain near divergence is
      flat, at the wrong level;
    - the choice is the largest candidate at or below the ceiling, if it is flat; if it is not, none is chosen
      (``index`` -1): the chains are too short for a safe step. Smaller steps are not tried, because a step too small
      to move the chains measurably also looks flat: mini-batch noise hides a slow climb, and the estimate is ~0.

    Candidates are run from the largest down: diverging ones stop early (cheap), those between the ceiling and the
    largest non-diverging one are skipped, and the scan ends at the first candidate under the ceiling, so a
    calibration costs about two full runs plus the diverging ones. ``Calibration.estimate`` is the chosen
    candidate's run, which is a full estimate with ``config``'s settings."""
    grid = np.asarray(grid, dtype=float)
    k, steps = len(grid), config.n_burnin + config.n_draws
    cal = Calibration(grid, np.zeros(k, bool), np.zeros(k, int), np.full(k, np.nan), np.full(k, np.nan),
                      np.full((k, config.n_chains, steps), np.nan), ceiling=float("nan"))
    for i, eps in enumerate(grid):
        if np.isfinite(cal.ceiling) and eps > cal.ceiling * (1 + 1e-9):
            continue
        out = estimate_llc(params, loss_fn, n, n_batches, replace(config, eps=float(eps)), init_loss)
        init_loss = out["init_loss"]   # the same w* for every candidate: computed once
        cal.ran[i], cal.diverged[i], cal.llc[i], cal.traces[i] = True, out["diverged"], out["llc"], out["trace"]
        cal.trend[i] = trace_trend(out["trace"], config.n_burnin)
        if out["diverged"]:
            continue
        if not np.isfinite(cal.ceiling):
            cal.ceiling = float(eps) / margin
            if eps > cal.ceiling * (1 + 1e-9):
                continue
        if cal.trend[i] <= flat_tol:
            cal.index, cal.estimate = i, out
        break       # the largest candidate under the ceiling decides (see the docstring)
    return cal


@dataclass
class PromptLoss:
    """The loss SGLD samples for a language model on prompts (the ``stages`` analyzer's): the mean scored next-token
    loss of one mini-batch of prompt rows. ``batches``: row indices of each batch (a fixed random partition);
    ``n``: scored predictions in all (n_beta = n / log n)."""

    params: list
    loss_fn: Callable[[int], object]
    n: int
    batches: list[np.ndarray]
    prompts: object = None   # the PromptSet, for ``init_loss``
    counts: list[int] | None = None

    def init_loss(self, model, chunk: int = 512) -> float:
        """The mean over batches of ``loss_fn(i)`` at the current weights, from per-prompt losses taken ``chunk``
        prompts per no-grad pass: one pass per mini-batch cost more than the SGLD chains (100 small passes per
        checkpoint of the universal family)."""
        from interp.maths.losses import prompt_losses

        order = np.concatenate(self.batches)
        per_prompt = prompt_losses(model, self.prompts.tokens, self.prompts.loss_mask, order, chunk)
        sums = np.add.reduceat(per_prompt, np.cumsum([0] + [len(b) for b in self.batches[:-1]]))
        return float(np.mean(sums / np.asarray(self.counts)))


def prompt_loss(model, prompts, batch_prompts: int, seed: int) -> PromptLoss:
    """``prompts``: a ``PromptSet`` (tokens [prompt, pos], loss_mask [prompt, pos - 1]); its rows are shuffled by
    ``seed`` and cut into batches of ``batch_prompts``."""
    from interp.maths.losses import summed_loss

    order = np.random.default_rng(seed).permutation(len(prompts))
    batches = [order[i:i + batch_prompts] for i in range(0, len(order), batch_prompts)]
    counts = [max(1, int(np.count_nonzero(prompts.loss_mask[b]))) for b in batches]

    def loss_fn(i: int):
        return summed_loss(model, prompts.tokens[batches[i]], prompts.loss_mask[batches[i]]) / counts[i]

    return PromptLoss([p for p in model.parameters() if p.requires_grad], loss_fn, sum(counts), batches, prompts,
                      counts)
