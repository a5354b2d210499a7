"""Incidental polysemanticity in a toy autoencoder (Lecomte, Thaman, Schaeffer, Bashkansky, Chow, Koyejo, *What
causes polysemanticity? An alternative origin story of mixed selectivity from incidental causes*, arXiv 2312.03096).

The model, as in the paper and its code (kushalthaman/polysemanticity, ``project-code``): ``n`` features, ``m >= n``
neurons, one tied weight matrix ``W`` [feature, neuron], no bias, ``y = ReLU(W W^T x)`` (x in R^n a row; the hidden
layer ``h = x W`` is linear, the ReLU acts on the output). It is trained on the ``n`` standard basis vectors, all of
them in every step (full batch), on ``sum of squared errors + l1 * sum |W|``, from ``W ~ N(0, 1/m)`` (each feature's
weight vector starts with norm about 1). The noise variant adds noise ``xi`` [neuron] to the hidden layer,
``y = ReLU((x W + xi) W^T)``: Bernoulli (+-sigma with equal odds; negative excess kurtosis, which the paper finds
sparsifies without any L1) or Gaussian (sigma).

Why n^2/(4m) (the paper's argument): with a sparsity pressure, training is winner-take-all: each feature ends on one
neuron, by default the one where its initial weight was largest in magnitude, which is a uniformly random neuron
with a random sign. So about ``C(n, 2) / m ~ n^2 / (2m)`` pairs of features start on the same neuron. A pair with
the *same* sign interferes (feature i's input gives output j the positive value ``W_i . W_j``, which the loss
punishes), so one of them moves away; a pair with *opposite* signs gives a negative ``W_i . W_j``, which the output
ReLU zeroes: nothing pushes them apart, and they stay. Half the pairs: ``n^2 / (4m)`` polysemantic neurons, for
``m >> n`` (collisions rare). Counting (the paper's rule): neuron j is polysemantic when more than one feature
has ``|W_ij|`` in [0.8, 1.2].

Ours:

- gradients are written out (``gradient``; checked against autograd in the tests) and Adam is applied by hand on
  a [seed, feature, neuron] tensor, so several seeds train as one batch of small matrix products; the optimizer is
  the paper code's AdamW (lr 1e-3, its default weight decay 0.01 is kept) or plain SGD (the paper's noise runs);
- each seed has its own generator for its initial weights and its noise, so a seed's run does not depend on which
  other seeds share its batch;
- the noise is one draw [neuron] per step for all n inputs (as in the paper's code), independent per seed;
- training stops early once every seed has *settled*: each feature has exactly one weight of magnitude >= 0.1 and
  it lies in the counting band. After that no count can change (Adam keeps dead weights within ~lr of 0). Noise-only
  runs (l1 = 0) never settle this way and run ``steps``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np

from interp.config import Options, option

BAND = (0.8, 1.2)   # the paper's rule: |W_ij| in this band means neuron j represents feature i
SETTLED_MIN = 0.1   # a weight of at least this magnitude counts as "still used" when testing for convergence


@dataclass(frozen=True)
class ToyConfig(Options):
    """One toy autoencoder setting (all seeds of a sweep cell share it)."""

    n_features: int = option(32, ge=1)
    n_neurons: int = option(128, ge=1)
    l1: float = option(1e-3, ge=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = option(1e-3, gt=0)
    weight_decay: float = option(0.01, ge=0)            # AdamW's decoupled decay (torch's default, as the paper's code)
    steps: int = option(20_000, ge=1)                   # at most; see ``stop_when_settled``
    stop_when_settled: bool = True
    noise: Literal["none", "bernoulli", "gaussian"] = "none"
    noise_std: float = option(0.0, ge=0)
    init_std: float | None = option(None, gt=0)         # None: 1 / sqrt(n_neurons)
    record_every: int = option(100, ge=1)
    band: tuple[float, float] = BAND


@dataclass
class ToyRun:
    """A trained batch of seeds. Traces are recorded at ``steps`` (step 0 is the initialisation).

    ``w_init``, ``w``: [seed, feature, neuron]; ``counts``, ``fourth_norm``, ``loss``: [seed, record];
    ``settled_step``: [seed], the first recorded step at which the seed had settled (-1: never)."""

    config: ToyConfig
    seeds: tuple[int, ...]
    w_init: np.ndarray
    w: np.ndarray
    steps: np.ndarray
    counts: np.ndarray
    fourth_norm: np.ndarray
    loss: np.ndarray
    settled_step: np.ndarray

    @property
    def final_counts(self) -> np.ndarray:
        """[seed] polysemantic neurons at the end."""
        return self.counts[:, -1]


def predicted_count(n: int, m: int) -> float:
    """The paper's expected number of polysemantic neurons, ``n^2 / (4m)`` (valid for m >> n)."""
    return n * n / (4 * m)


def in_band(w, band: tuple[float, float] = BAND):
    """[..., feature, neuron] bool: ``|W_ij|`` within the band (numpy or torch in, same out)."""
    a = abs(w)
    return (a >= band[0]) & (a <= band[1])


def features_per_neuron(w, band: tuple[float, float] = BAND):
    """[..., neuron]: how many features have ``|W_ij|`` in the band, from ``w`` [..., feature, neuron]."""
    return in_band(w, band).sum(-2)


def count_polysemantic(w, band: tuple[float, float] = BAND):
    """[...]: neurons with more than one feature in the band, from ``w`` [..., feature, neuron]."""
    return (features_per_neuron(w, band) > 1).sum(-1)


def settled(w, band: tuple[float, float] = BAND):
    """[...] bool: every feature has exactly one weight of magnitude >= ``SETTLED_MIN``, and it is in the band."""
    used = abs(w) >= SETTLED_MIN
    return ((used.sum(-1) == 1) & (in_band(w, band).sum(-1) == 1)).all(-1)


def gradient(w, noise=None, l1: float = 0.0, with_loss: bool = True):
    """(loss [seed], or None without ``with_loss``; dL/dW [seed, feature, neuron]) of
    ``sum (ReLU(H W^T) - I)^2 + l1 * sum |W|`` with ``H = W + xi`` (``noise`` xi: [seed, neuron] or None), for the
    full batch of basis vectors, in closed form:
    ``R = 2 (out - I) * [pre > 0]``, ``dL/dW = R W + R^T H + l1 sign(W)`` (``sign(0) = 0``, autograd's choice)."""
    import torch

    h = w if noise is None else w + noise[:, None, :]
    pre = torch.bmm(h, w.transpose(1, 2))                                      # [seed, input, output]
    eye = torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
    pos = pre > 0
    loss = None
    if with_loss:
        err = torch.where(pos, pre - eye, -eye)                                # ReLU(pre) - I
        loss = err.square().sum((1, 2)) + l1 * w.abs().sum((1, 2))
    r = (pre - eye).mul_(pos).mul_(2)                                          # dL/dpre
    if noise is None:   # H = W and R is symmetric: R W + R^T W = 2 R W, one product instead of two
        grad = torch.bmm(r, w).mul_(2)
    else:
        grad = torch.bmm(r, w) + torch.bmm(r.transpose(1, 2), h)
    if l1:
        grad.add_(w.sign(), alpha=l1)
    return loss, grad


def train_toy(config: ToyConfig, seeds: tuple[int, ...] | list[int], device: str = "cpu",
              threads: int | None = None) -> ToyRun:
    """Train one autoencoder per seed, as one batch (float32). ``threads``: torch's CPU threads for the call (restored
    after); one is fastest for these small products on a shared machine."""
    import torch

    seeds = tuple(int(s) for s in seeds)
    with _threads(threads):
        n, m = config.n_features, config.n_neurons
        std = config.init_std if config.init_std is not None else 1 / math.sqrt(m)
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        w = torch.stack([torch.randn(n, m, generator=g) * std for g in gens]).to(device)
        w_init = w.cpu().numpy().copy()
        opt = _Optimizer(config, w)
        rec = _Recorder(config, len(seeds))
        rec.add(0, w, gradient(w, None, config.l1)[0])
        for t in range(1, config.steps + 1):
            noise = _noise(config, gens, m, device)
            record = t % config.record_every == 0 or t == config.steps
            loss, grad = gradient(w, noise, config.l1, with_loss=record)   # the loss before this step's update
            opt.step(w, grad, t)
            if record:
                if rec.add(t, w, loss) and config.stop_when_settled:
                    break
    return rec.finish(config, seeds, w_init, w.cpu().numpy())


class _Optimizer:
    """AdamW (decoupled decay, bias-corrected moments, torch's defaults) or SGD, in place on [seed, ...] weights."""

    def __init__(self, config: ToyConfig, w, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        import torch

        self.c, self.betas, self.eps = config, betas, eps
        if config.optimizer == "adamw":
            self.m1, self.m2 = torch.zeros_like(w), torch.zeros_like(w)

    def step(self, w, grad, t: int) -> None:
        c = self.c
        if c.optimizer == "sgd":
            w.sub_(grad, alpha=c.lr)
            return
        b1, b2 = self.betas
        self.m1.lerp_(grad, 1 - b1)
        self.m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = self.m2.sqrt().div_(math.sqrt(1 - b2 ** t)).add_(self.eps)
        if c.weight_decay:
            w.mul_(1 - c.lr * c.weight_decay)
        w.addcdiv_(self.m1, denom, value=-c.lr / (1 - b1 ** t))


class _Recorder:
    def __init__(self, config: ToyConfig, n_seeds: int):
        self.band, self.n_seeds = config.band, n_seeds
        self.steps: list[int] = []
        self.counts: list[np.ndarray] = []
        self.fourth: list[np.ndarray] = []
        self.loss: list[np.ndarray] = []
        self.settled_step = np.full(n_seeds, -1)

    def add(self, step: int, w, loss) -> bool:
        """Record one step; True once every seed has settled."""
        self.steps.append(step)
        self.counts.append(count_polysemantic(w, self.band).cpu().numpy())
        self.fourth.append(w.pow(4).sum(-1).mean(-1).double().cpu().numpy())   # the paper's sparsity measure
        self.loss.append(loss.double().cpu().numpy())
        now = settled(w, self.band).cpu().numpy()
        self.settled_step[(self.settled_step < 0) & now] = step
        return bool(now.all())

    def finish(self, config: ToyConfig, seeds: tuple[int, ...], w_init: np.ndarray, w: np.ndarray) -> ToyRun:
        return ToyRun(config, seeds, w_init, w, np.asarray(self.steps), np.stack(self.counts, 1),
                      np.stack(self.fourth, 1), np.stack(self.loss, 1), self.settled_step)


def _noise(config: ToyConfig, gens: list, m: int, device: str):
    """[seed, neuron] hidden-layer noise for one step, from each seed's own generator (None without noise)."""
    import torch

    if config.noise == "none" or config.noise_std == 0:
        return None
    if config.noise == "bernoulli":
        draws = [torch.randint(0, 2, (m,), generator=g).float() * 2 - 1 for g in gens]
    else:
        draws = [torch.randn(m, generator=g) for g in gens]
    return (torch.stack(draws) * config.noise_std).to(device)


@contextmanager
def _threads(n: int | None):
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
