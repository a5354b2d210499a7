"""The arithmetic of ``universal-lineage`` on correlations already computed: excess over the rotation baseline,
the step from which a condition holds for good, the bootstrap over prompt blocks, and agreement between seeds.

Arrays index neurons as ``unit = layer * d_mlp + neuron`` (``universal-neurons``' flattening), seeds by their
position in the unit (0..n-1).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def excess(corr: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """[step, seed, unit]: mean over the other seeds of ``corr`` minus that of ``baseline`` (each [step, seed,
    other_seed, unit], NaN on the diagonal), the definition ``universal-neurons`` thresholds. NaN where every
    other seed's value is NaN (a step with no pass)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the mean of an all-NaN slice is NaN, as wanted
        return np.nanmean(corr, axis=2) - np.nanmean(baseline, axis=2)


def settled_index(ok: np.ndarray) -> np.ndarray:
    """[...]: the first step index k with ``ok[k:]`` all true (``ok`` is [step, ...] bool), -1 where ``ok`` fails
    at the last step. A condition that holds, breaks and holds again settles at its last start."""
    held = np.flip(np.logical_and.accumulate(np.flip(ok, 0), axis=0), 0)     # [step, ...]: ok from here on
    first = np.argmax(held, axis=0)
    return np.where(held[-1], first, -1)


def bootstrap_weights(blocks: int, draws: int, seed: int):
    """[draw, block] float64 torch tensor: how many times each block is drawn (with replacement, ``blocks`` draws)."""
    import torch

    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.multinomial(blocks, np.full(blocks, 1 / blocks), size=draws).astype(np.float64))


def bootstrap_universal(draws: dict[tuple[int, int], np.ndarray], baseline: np.ndarray, threshold: float,
                        n: int) -> np.ndarray:
    """[draw, seed, unit] bool: universal in each bootstrap draw, from ``draws`` {(a, b): [draw, unit]} (a's
    correlation with its partner in b, blocks resampled) and the full-data ``baseline`` [seed, other_seed, unit]."""
    n_draws, units = next(iter(draws.values())).shape
    out = np.zeros((n_draws, n, units), dtype=bool)
    for a in range(n):
        others = [b for b in range(n) if b != a]
        mean_corr = np.mean([draws[(a, b)] for b in others], axis=0)
        out[:, a] = mean_corr - np.mean(baseline[a, others], axis=0) > threshold
    return out


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) percentile interval over axis 1 of ``samples`` [step, draw, ...]."""
    tail = 100 * (1 - confidence) / 2
    return np.percentile(samples, tail, axis=1), np.percentile(samples, 100 - tail, axis=1)


def as_index(index: np.ndarray, device: Any):
    import torch

    return torch.as_tensor(np.asarray(index, dtype=np.int64), device=device)


def index_counts(index: np.ndarray, universal: np.ndarray, n_layers: int, d: int, n_steps: int) -> list[list[int]]:
    """[layer][step index]: how many universal neurons (all seeds) settle at each step index (-1: never)."""
    by_layer = index.reshape(index.shape[0], n_layers, d)
    uni = universal.reshape(universal.shape[0], n_layers, d)
    return [np.bincount(by_layer[:, layer][uni[:, layer] & (by_layer[:, layer] >= 0)], minlength=n_steps).tolist()
            for layer in range(n_layers)]


def order_counts(lock_in: np.ndarray, identity: np.ndarray, universal: np.ndarray) -> dict[str, int]:
    """Among universal neurons that settle in both senses: identity before, at, or after the universal lock-in."""
    both = universal & (lock_in >= 0) & (identity >= 0)
    li, idn = lock_in[both], identity[both]
    return {"identity_first": int((idn < li).sum()), "same_step": int((idn == li).sum()),
            "universal_first": int((idn > li).sum())}


def seed_agreement(lock_in: np.ndarray, partner: np.ndarray, universal: np.ndarray) -> dict[str, Any]:
    """Do the seeds agree on when? Over mutual pairs of universal neurons (each the other's best partner at the last
    step, both universal, both settled): the share locking in at the same step index, within one index, and the
    median gap in step indices."""
    n = lock_in.shape[0]
    gaps = []
    for a in range(n):
        for b in range(a + 1, n):
            for u in np.flatnonzero(universal[a] & (lock_in[a] >= 0)):
                p = int(partner[a, b, u])
                if p >= 0 and universal[b, p] and lock_in[b, p] >= 0 and int(partner[b, a, p]) == u:
                    gaps.append(abs(int(lock_in[a, u]) - int(lock_in[b, p])))
    g = np.asarray(gaps)
    return {"mutual_pairs": len(gaps), "same_step_share": float((g == 0).mean()) if len(g) else None,
            "within_one_share": float((g <= 1).mean()) if len(g) else None,
            "median_gap": float(np.median(g)) if len(g) else None}
