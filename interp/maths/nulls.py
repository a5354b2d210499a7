"""Null expectations for comparisons whose chance level is not zero.

Two sets of neurons drawn at random overlap by chance, and by more the larger they are: two random sets of 5 and 6
of 8 neurons have an expected Jaccard index of 0.53. An overlap means something only beside what sets of the same
sizes would give at random.
"""

from __future__ import annotations

import numpy as np


def expected_jaccard(n: int, a: int, b: int) -> float:
    """E[|A ∩ B| / |A ∪ B|] for A, B drawn uniformly at random among the subsets of sizes ``a`` and ``b`` of ``n``
    items. The intersection size k is hypergeometric (n items, a marked, b drawn) and the union is a + b - k; the
    expectation is the exact sum over k. Two empty sets have Jaccard 0 (the convention of ``jaccard``)."""
    if not 0 <= a <= n or not 0 <= b <= n:
        raise ValueError(f"set sizes {a}, {b} must lie in [0, {n}]")
    if a == 0 and b == 0:
        return 0.0
    from scipy.stats import hypergeom

    k = np.arange(max(0, a + b - n), min(a, b) + 1)
    p = hypergeom(n, a, b).pmf(k)
    return float(np.sum(p * k / (a + b - k)))


def expected_jaccard_matrix(n: int, sizes: np.ndarray) -> np.ndarray:
    """[set, set] ``expected_jaccard`` for every pair of set sizes (1 on the diagonal of non-empty sets)."""
    sizes = np.asarray(sizes, dtype=int)
    out = np.array([[expected_jaccard(n, int(a), int(b)) for b in sizes] for a in sizes])
    np.fill_diagonal(out, (sizes > 0).astype(float))
    return out


def stratified_sample(scores: np.ndarray, size: int, rng: np.random.Generator, strata: int = 4) -> np.ndarray:
    """Indices of ``scores``: all of them when there are at most ``size``; else ``size`` drawn without replacement,
    the same number from each of ``strata`` bins of equal count along the sorted scores (so a rank correlation over
    the sample sees the whole range, not the top and a random rest)."""
    n = len(scores)
    if n <= size:
        return np.arange(n)
    order = np.argsort(-np.asarray(scores), kind="stable")
    bins = np.array_split(order, strata)
    per = [size // strata + (i < size % strata) for i in range(strata)]
    return np.sort(np.concatenate([rng.choice(b, min(k, len(b)), replace=False) for b, k in zip(bins, per)]))
