"""Local learning coefficient (LLC) by SGLD, for any torch model and loss (SCIENCE.md section 6; Lau et al.; the
devinterp package's estimator, written here from its definition).

    llc = n_beta * (E_{w ~ p_loc}[L(w)] - L(w*)),    n_beta = n / log n

where p_loc(w) ~ exp(-n_beta L(w) - gamma/2 ||w - w*||^2) is the tempered posterior localised at the checkpoint w*,
sampled by SGLD:

    w <- w - (eps / 2) (n_beta grad L_batch(w) + gamma (w - w*)) + N(0, eps)

For a regular model with d parameters the LLC is d/2 (tested on linear regression); singular models give less.
The estimate depends on eps and gamma: too large an eps diverges (reported as ``diverged``, the chain's loss
exceeding ``diverge_factor`` times its start plus one), too small an eps does not mix. ``chain_llcs`` gives every
chain's estimate, so the spread is visible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
                 config: SGLDConfig = SGLDConfig()) -> dict:
    """``loss_fn(i)``: the mean loss on batch ``i`` (0 <= i < n_batches) at the current parameter values, a torch
    scalar with a graph to ``params``; ``n``: the number of samples the loss averages over in all. The parameters
    are restored to w* afterwards. Returns ``llc`` (mean over chains that did not diverge; NaN if all did),
    ``chain_llcs``, ``diverged`` (count), ``init_loss``."""
    import torch

    n_beta = n / math.log(n)
    w_star = [p.detach().clone() for p in params]
    gen = torch.Generator(device=params[0].device).manual_seed(config.seed)
    batch_rng = np.random.default_rng(config.seed)
    with torch.no_grad():
        init = float(np.mean([float(loss_fn(i)) for i in range(n_batches)]))
    chain_llcs, diverged = [], 0
    try:
        for _ in range(config.n_chains):
            losses = []
            for step in range(config.n_burnin + config.n_draws):
                with torch.enable_grad():
                    loss = loss_fn(int(batch_rng.integers(n_batches)))
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
                with torch.no_grad():
                    for p, g, p0 in zip(params, grads, w_star):
                        drift = config.gamma * (p - p0) + (n_beta * g if g is not None else 0)
                        noise = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
                        p.add_(-0.5 * config.eps * drift + math.sqrt(config.eps) * noise)
                if step >= config.n_burnin:
                    losses.append(float(loss.detach()))
            if not np.isfinite(losses).all() or np.mean(losses) > config.diverge_factor * (init + 1):
                diverged += 1
            else:
                chain_llcs.append(n_beta * (float(np.mean(losses)) - init))
            with torch.no_grad():
                for p, p0 in zip(params, w_star):
                    p.copy_(p0)
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, w_star):
                p.copy_(p0)
    return {"llc": float(np.mean(chain_llcs)) if chain_llcs else float("nan"), "chain_llcs": chain_llcs,
            "diverged": diverged, "init_loss": init}
