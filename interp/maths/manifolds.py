"""Curved manifolds with a known parameter, synthetic (ground truth) and found in modular-addition models.

``circle``, ``helix`` and ``sphere`` embed a low-dimensional curve or surface in R^d by a random orthogonal map plus
isotropic noise and return the points, the parameter theta in [0, 2 pi) of every point, and the manifold's own
subspace (d x m, orthonormal). ``fourier_circles`` finds the circles of a modular-addition model: its key frequencies
from the embedding's Fourier spectrum over the operand ranks, and for each the plane in which activations trace
``(cos, sin)(2 pi k c / p)`` with ``c = (a + b) mod p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Manifold:
    points: np.ndarray      # [n, d]
    theta: np.ndarray       # [n] in [0, 2 pi)
    basis: np.ndarray       # [d, m] orthonormal: the subspace the manifold spans
    name: str = ""


def _embed(local: np.ndarray, d: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    q, r = np.linalg.qr(rng.normal(size=(d, local.shape[1])))
    basis = q * np.sign(np.diag(r))[None, :]
    return local @ basis.T + noise * rng.normal(size=(len(local), d)), basis


def circle(n: int = 4096, d: int = 32, noise: float = 0.02, radius: float = 1.0, seed: int = 0) -> Manifold:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, n)
    pts, basis = _embed(radius * np.stack([np.cos(theta), np.sin(theta)], 1), d, noise, rng)
    return Manifold(pts, theta, basis, "circle")


def helix(n: int = 4096, d: int = 32, noise: float = 0.02, turns: float = 3.0, pitch: float = 0.3,
          seed: int = 0) -> Manifold:
    """A helix whose parameter wraps ``turns`` times; theta is the angle (mod 2 pi), height grows with the turn."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi * turns, n)
    local = np.stack([np.cos(t), np.sin(t), pitch * t / (2 * np.pi)], 1)
    pts, basis = _embed(local - local.mean(0), d, noise, rng)
    return Manifold(pts, np.mod(t, 2 * np.pi), basis, "helix")


def sphere(n: int = 4096, d: int = 32, noise: float = 0.02, seed: int = 0) -> Manifold:
    """Uniform on the 2-sphere; theta is the azimuth."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    pts, basis = _embed(v, d, noise, rng)
    return Manifold(pts, np.mod(np.arctan2(v[:, 1], v[:, 0]), 2 * np.pi), basis, "sphere")


GENERATORS = {"circle": circle, "helix": helix, "sphere": sphere}


def embedding_spectrum(w_e_by_rank: np.ndarray) -> np.ndarray:
    """[frequency] ``s_k = ||FFT over ranks of W_E at k||_2`` for k = 1..(p-1)//2 (``s[k - 1]``), the rows of
    ``w_e_by_rank`` [p, d] ordered by the operands' hidden rank, centred first (the mean row is frequency 0). For real
    rows |F_k| = |F_{p-k}|, so frequency k stands for the pair (k, p - k): one circle."""
    p = len(w_e_by_rank)
    spec = np.fft.rfft(w_e_by_rank - w_e_by_rank.mean(0), axis=0)
    return np.linalg.norm(spec, axis=1)[1:(p - 1) // 2 + 1]


def surviving(s: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """[frequency] bool: s_k above ``factor`` times the mean signal (Ding et al.'s rule, arXiv 2405.17420)."""
    return s > factor * s.mean()


def reference_circles(w_e_by_rank: np.ndarray, factor: float = 2.0) -> int:
    """Circles by the reference code's rule (``get_final_circle_freqs`` of Ding et al.'s circle-survival repository):
    the full spectrum of the *uncentred* rows (frequency 0 included, both halves), a frequency survives above
    ``factor`` times the mean over all p frequencies, and the survivors are counted in pairs."""
    signal = np.linalg.norm(np.fft.fft(w_e_by_rank, axis=0), axis=1)
    return int((signal > factor * signal.mean()).sum() // 2)


def key_frequencies(w_e_by_rank: np.ndarray, max_freqs: int = 3) -> tuple[list[int], np.ndarray]:
    """Surviving frequencies (``embedding_spectrum`` above twice its mean), strongest first, at most ``max_freqs``
    (at least the strongest one); and the whole spectrum s."""
    s = embedding_spectrum(w_e_by_rank)
    keys = [int(k) + 1 for k in np.argsort(-s) if surviving(s)[k]]
    return keys[:max_freqs] or [int(np.argmax(s)) + 1], s


def fourier_circle(acts: np.ndarray, c: np.ndarray, k: int, p: int) -> Manifold:
    """The circle of frequency k in activations [n, d] of prompts whose answer is c = (a + b) mod p: least squares
    directions u_cos, u_sin with ``acts ~ mean + cos(w c) u_cos + sin(w c) u_sin``; basis = their orthonormalised
    span; points = the activations themselves (the SAE sees everything), theta = w c mod 2 pi."""
    w = 2 * np.pi * k / p
    design = np.stack([np.cos(w * c), np.sin(w * c)], 1)
    centred = acts - acts.mean(0)
    coef, *_ = np.linalg.lstsq(design, centred, rcond=None)                # [2, d]
    q, _ = np.linalg.qr(coef.T)
    return Manifold(acts, np.mod(w * c, 2 * np.pi), q, f"k={k}")


def circle_r2(acts: np.ndarray, value: np.ndarray, k: int, period: int) -> float:
    """How much of the activations' variance the circle of frequency ``k`` explains: the share of the centred
    activations [n, d] that the least-squares fit ``mean + cos(2 pi k v / P) u_cos + sin(2 pi k v / P) u_sin``
    reproduces (1: the points lie on the circle; about 2 / n for noise)."""
    w = 2 * np.pi * k / period
    design = np.stack([np.cos(w * value), np.sin(w * value)], 1)
    centred = acts - acts.mean(0)
    coef, *_ = np.linalg.lstsq(design, centred, rcond=None)
    return float(((design @ coef) ** 2).sum() / max((centred**2).sum(), 1e-300))


def label_frequencies(acts: np.ndarray, value: np.ndarray, period: int, max_freqs: int = 3,
                      share: float = 0.5) -> tuple[list[int], np.ndarray]:
    """The circles a labelled concept traces: the frequencies k = 1..P//2 whose circle fit (``circle_r2``) is at
    least ``share`` of the best, strongest first, at most ``max_freqs``; and every frequency's R^2. Engels et al.
    (arXiv 2405.14860) found days and months at k = 1; a modular task's answer can sit at any k."""
    r2 = np.array([circle_r2(acts, value, k, period) for k in range(1, period // 2 + 1)])
    keys = [int(k) + 1 for k in np.argsort(-r2, kind="stable") if r2[k] >= share * r2.max()]
    return keys[:max_freqs], r2
