"""Cross-seed neuron correlations, in blocks that can run anywhere (Gurnee et al., arXiv 2401.12181).

The unit of work is a ``Block``: seed ``a`` at layer ``la`` against seed ``b`` at layer ``lb`` (a < b). One
streaming pass gives, per input (seed, layer), its shifted column sums and Gram matrix (``ShiftedColumns``) and,
per block, the float64 cross sums of shifted float32 GEMMs (``CrossSums``). From those sums alone a block yields
four sets of maxima: each side's best real correlation, and each side against the *other* side rotated by a random
orthogonal matrix (Haar; one per (seed, layer), drawn from ``default_rng([seed, b, lb])`` so any worker can redraw
it), the baseline of Gurnee et al.

Why the baseline costs no pass of its own: for ``z = y R`` (shifted by the same ``R``), ``sum(x^T z) = sum(x^T y)
R`` and ``sum(z_j^2) = (R^T G R)_jj`` with ``G`` the Gram matrix of y. So the rotated correlations are d^3 float64
products at the end instead of a streamed GEMM over every token per (seed, other seed, layer pair): with n seeds
the tokens are multiplied n(n-1)/2 L^2 times plus n L half-cost Grams, not 3 n(n-1)/2 L^2 times (the reference
code streams each rotated baseline as a run of its own). It is also exact where the old way rounded the rotated
activations to float32.

``run_blocks`` accumulates any set of blocks in one pass over the activations; ``reduce`` assembles the per-neuron
maxima (and, within-layer, the one-to-one Hungarian matching) from any collection of block results. The serial
path (all blocks, in passes bounded by memory) and a sharded one (one task per (seed pair, layer pair), ``shards``)
run the same computations on the same chunks, so their arrays are identical, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from interp.maths.stats import CrossSums, ShiftedColumns, Workspace, pearson

# chunks: a function returning a fresh iterator of {(seed, layer): [token, neuron] array} for the keys asked
Chunks = Callable[[set[tuple[int, int]]], Iterator[dict[tuple[int, int], np.ndarray]]]

BLOCK_ROWS = 1024   # tokens per float32 GEMM: see StreamingCorrelation on the accuracy of float32 partial sums


@dataclass(frozen=True, order=True)
class Block:
    a: int
    la: int
    b: int
    lb: int             # a < b

    @property
    def inputs(self) -> set[tuple[int, int]]:
        return {(self.a, self.la), (self.b, self.lb)}


@dataclass
class BlockResult:
    block: Block
    row_max: np.ndarray                  # [d] per neuron of (a, la): max real r over the neurons of (b, lb)
    row_arg: np.ndarray                  # [d] that neuron's index
    col_max: np.ndarray                  # [d] per neuron of (b, lb): max over (a, la)
    col_arg: np.ndarray
    base_row_max: np.ndarray             # [d] per neuron of (a, la): max r against rotated (b, lb)
    base_col_max: np.ndarray             # [d] per neuron of (b, lb): max r against rotated (a, la)
    matched: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None)   # la == lb: rows, cols, r


def haar_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random orthogonal matrix [n, n] (QR of a Gaussian, with the sign fix). torch's QR: numpy's took
    1.1 s at n = 2,048 here against torch's 0.48 s, the same matrix to 1e-14, and a step takes one per input."""
    import torch

    q, r = torch.linalg.qr(torch.from_numpy(rng.normal(size=(n, n))))
    return (q * torch.sign(torch.diagonal(r))[None, :]).numpy()


def rotation(seed: int, b: int, layer: int, d: int) -> np.ndarray:
    return haar_rotation(d, np.random.default_rng([seed, b, layer]))


def all_blocks(n_seeds: int, n_layers: int) -> list[Block]:
    return [Block(a, la, b, lb) for a in range(n_seeds) for b in range(a + 1, n_seeds)
            for la in range(n_layers) for lb in range(n_layers)]


def shards(n_seeds: int, n_layers: int) -> list[list[Block]]:
    """One shard per (seed pair, layer pair): one block, reading two layers' activations."""
    return [[k] for k in all_blocks(n_seeds, n_layers)]


def passes(blocks: list[Block], d: int, memory_bytes: float) -> list[list[Block]]:
    """Blocks grouped so each pass's float64 sums fit in ``memory_bytes``, grouped by the row layer so a pass reads
    few layers. A pass of k blocks holds k cross sums and at most k + 1 Gram matrices (d x d float64 each) plus a
    few shared d x d scratch tensors; each pass re-reads the cache and retakes the Grams of the inputs it touches,
    so fewer, larger passes cost less."""
    per_pass = max(1, int((memory_bytes / (8 * d * d) - 4) // 2))
    ordered = sorted(blocks, key=lambda k: (k.la, k.a, k.lb, k.b))
    return [ordered[i:i + per_pass] for i in range(0, len(ordered), per_pass)]


def run_blocks(blocks: list[Block], chunks: Chunks, d: int, rotation_seed: int, device: str = "cpu",
               matching: bool = False) -> list[BlockResult]:
    """One streaming pass over the activations that ``blocks`` need; returns each block's maxima."""
    import torch

    ws = Workspace()
    needed = sorted(set().union(*(k.inputs for k in blocks)))
    cols = {key: ShiftedColumns(gram=True, ws=ws) for key in needed}
    cross = {k: CrossSums(ws) for k in blocks}
    for chunk in chunks(set(needed)):
        # a lockstep pass hands torch tensors already on the device; a cache read, numpy arrays
        xs = {key: (chunk[key].to(device=device, dtype=torch.float32) if isinstance(chunk[key], torch.Tensor)
                    else torch.as_tensor(np.ascontiguousarray(chunk[key]), dtype=torch.float32, device=device))
              for key in needed}
        for start in range(0, len(xs[needed[0]]), BLOCK_ROWS):
            shifted = {key: cols[key].shifted(x[start:start + BLOCK_ROWS]) for key, x in xs.items()}
            for key, x in shifted.items():
                cols[key].add(x)
            for k in blocks:
                cross[k].add(shifted[(k.a, k.la)], shifted[(k.b, k.lb)])
    n = cols[needed[0]].n
    sums = {}   # per input, once (not per block): R, s, variance sums, and the same two of the input rotated by R
    for key in needed:
        r = torch.as_tensor(rotation(rotation_seed, key[0], key[1], d), dtype=torch.float64, device=device)
        sums[key] = (r, cols[key].s, cols[key].variance_sums(), *cols[key].rotated(r))
    del cols
    return [_summarise(k, n, sums[(k.a, k.la)], sums[(k.b, k.lb)], cross.pop(k).sxy, matching) for k in blocks]


def _summarise(k: Block, n: int, x: tuple, y: tuple, sxy, matching: bool) -> BlockResult:
    """Maxima of the real block and both baselines from sums (``x``, ``y``: the two inputs' entries of ``sums``)."""
    (rx, sx, vx, sx_r, vx_r), (ry, sy, vy, sy_r, vy_r) = x, y
    c = pearson(n, sx, sy, vx, vy, sxy).cpu().numpy()
    base_row = pearson(n, sx, sy_r, vx, vy_r, sxy @ ry).amax(1).cpu().numpy()
    base_col = pearson(n, sy, sx_r, vy, vx_r, sxy.T @ rx).amax(1).cpu().numpy()
    out = BlockResult(k, c.max(1), c.argmax(1), c.max(0), c.argmax(0), base_row, base_col)
    if matching and k.la == k.lb:
        from scipy.optimize import linear_sum_assignment

        r, j = linear_sum_assignment(-c)
        out.matched = (r, j, c[r, j])
    return out


def reduce(results: Iterable[BlockResult], n_seeds: int, n_layers: int, d: int,
           matching: bool = False) -> dict[str, np.ndarray]:
    """[seed, other_seed, unit] arrays (units = layer * d + neuron; the diagonal NaN / -1): ``max_corr``,
    ``best_match``, ``baseline_max`` and, with ``matching``, ``matched_corr``. Ties keep the lowest unit index,
    whatever order the results arrive in."""
    shape = (n_seeds, n_seeds, n_layers * d)
    max_corr, best = np.full(shape, -np.inf), np.full(shape, -1, dtype=np.int64)
    baseline, matched = np.full(shape, -np.inf), np.full(shape, np.nan)
    for res in sorted(results, key=lambda r: r.block):
        k = res.block
        rows, cols = slice(k.la * d, (k.la + 1) * d), slice(k.lb * d, (k.lb + 1) * d)
        baseline[k.a, k.b, rows] = np.maximum(baseline[k.a, k.b, rows], res.base_row_max)
        baseline[k.b, k.a, cols] = np.maximum(baseline[k.b, k.a, cols], res.base_col_max)
        _merge(max_corr[k.a, k.b, rows], best[k.a, k.b, rows], res.row_max, res.row_arg + k.lb * d)
        _merge(max_corr[k.b, k.a, cols], best[k.b, k.a, cols], res.col_max, res.col_arg + k.la * d)
        if res.matched is not None:
            r, c, v = res.matched
            matched[k.a, k.b, k.la * d + r], matched[k.b, k.a, k.lb * d + c] = v, v
    for a in range(n_seeds):
        max_corr[a, a], baseline[a, a], best[a, a] = np.nan, np.nan, -1
    out = {"max_corr": max_corr, "best_match": best, "baseline_max": baseline}
    if matching:
        out["matched_corr"] = matched
    return out


def _merge(current: np.ndarray, arg: np.ndarray, new: np.ndarray, new_arg: np.ndarray) -> None:
    better = (new > current) | ((new == current) & (new_arg < arg))
    current[better], arg[better] = new[better], new_arg[better]


def cross_seed_correlations(chunks: Chunks, n_seeds: int, n_layers: int, d: int, seed: int = 0,
                            device: str = "cpu", matching: bool = False,
                            memory_bytes: float = 4 * 2**30) -> dict[str, np.ndarray]:
    """Every block, in passes whose float64 sums fit ``memory_bytes``; then ``reduce``."""
    results: list[BlockResult] = []
    for group in passes(all_blocks(n_seeds, n_layers), d, memory_bytes):
        results += run_blocks(group, chunks, d, seed, device, matching)
    return reduce(results, n_seeds, n_layers, d, matching)
