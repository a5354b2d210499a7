"""Cross-seed neuron correlations, in blocks that can run anywhere (SCIENCE.md section 3).

The unit of work is a ``Block``: the Pearson correlations between the neurons of seed ``a`` at layer ``la`` and
those of seed ``b`` at layer ``lb``, streamed over every token (``StreamingCorrelation``: shifted float32 GEMMs
into float64 sums). A *real* block (a < b) yields both directions' maxima; a *baseline* block correlates seed a
with seed b's activations multiplied by a random orthogonal matrix (Haar; one per (seed, layer), drawn from
``default_rng([seed, b, lb])`` so any worker can redraw it) and yields seed a's maxima against that.

``run_blocks`` accumulates any set of blocks in one pass over the activations; ``reduce`` assembles the
per-neuron maxima (and, within-layer, the one-to-one Hungarian matching) from any collection of block results.
The serial path (all blocks, in passes bounded by memory) and a sharded one (one task per (layer pair, seed pair),
``shards``) run the same block computations on the same chunks, so their arrays are identical, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from interp.activations.stats import StreamingCorrelation

# chunks: a function returning a fresh iterator of {(seed, layer): [token, neuron] array} for the keys asked
Chunks = Callable[[set[tuple[int, int]]], Iterator[dict[tuple[int, int], np.ndarray]]]


@dataclass(frozen=True, order=True)
class Block:
    a: int
    la: int
    b: int
    lb: int
    real: bool          # True: seed a vs seed b (a < b); False: seed a vs rotated seed b (a != b)

    @property
    def inputs(self) -> set[tuple[int, int]]:
        return {(self.a, self.la), (self.b, self.lb)}


@dataclass
class BlockResult:
    block: Block
    row_max: np.ndarray                  # [d] per neuron of (a, la): max over the block's columns
    row_arg: np.ndarray                  # [d] column index (neuron of (b, lb))
    col_max: np.ndarray | None = None    # real blocks: per neuron of (b, lb), max over (a, la)
    col_arg: np.ndarray | None = None
    matched: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None)   # la == lb: rows, cols, r


def haar_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random orthogonal matrix [n, n] (QR of a Gaussian, with the sign fix)."""
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))[None, :]


def rotation(seed: int, b: int, layer: int, d: int) -> np.ndarray:
    return haar_rotation(d, np.random.default_rng([seed, b, layer]))


def all_blocks(n_seeds: int, n_layers: int) -> list[Block]:
    real = [Block(a, la, b, lb, True) for a in range(n_seeds) for b in range(a + 1, n_seeds)
            for la in range(n_layers) for lb in range(n_layers)]
    base = [Block(a, la, b, lb, False) for a in range(n_seeds) for b in range(n_seeds) if a != b
            for la in range(n_layers) for lb in range(n_layers)]
    return real + base


def shards(n_seeds: int, n_layers: int) -> list[list[Block]]:
    """One shard per (seed pair, layer pair): the real block and the two baseline blocks that read the same two
    layers' activations (a vs rotated b, b vs rotated a)."""
    out = []
    for a in range(n_seeds):
        for b in range(a + 1, n_seeds):
            for la in range(n_layers):
                for lb in range(n_layers):
                    out.append([Block(a, la, b, lb, True), Block(a, la, b, lb, False), Block(b, lb, a, la, False)])
    return out


def passes(blocks: list[Block], d: int, memory_bytes: float) -> list[list[Block]]:
    """Blocks grouped so each pass's float64 sums (d x d per block) fit in ``memory_bytes``, grouped by the row
    layer so a pass reads few layers."""
    per_pass = max(1, int(memory_bytes // (d * d * 8 * 1.5)))
    ordered = sorted(blocks, key=lambda k: (k.la, k.a, k.lb, k.b, k.real))
    return [ordered[i:i + per_pass] for i in range(0, len(ordered), per_pass)]


def run_blocks(blocks: list[Block], chunks: Chunks, d: int, rotation_seed: int, device: str = "cpu",
               matching: bool = False) -> list[BlockResult]:
    """One streaming pass over the activations that ``blocks`` need; returns each block's maxima."""
    import torch

    needed = set().union(*(k.inputs for k in blocks))
    rotated = {(k.b, k.lb) for k in blocks if not k.real}
    rot = {key: torch.as_tensor(rotation(rotation_seed, key[0], key[1], d), dtype=torch.float32, device=device)
           for key in sorted(rotated)}
    acc = {k: StreamingCorrelation() for k in blocks}
    for chunk in chunks(needed):
        xs = {key: torch.as_tensor(np.ascontiguousarray(chunk[key]), dtype=torch.float32, device=device)
              for key in sorted(needed)}
        rs = {key: xs[key] @ rot[key] for key in sorted(rotated)}
        for k in blocks:
            acc[k].update(xs[(k.a, k.la)], xs[(k.b, k.lb)] if k.real else rs[(k.b, k.lb)])
    return [_summarise(k, acc.pop(k).result().cpu().numpy(), matching) for k in blocks]


def _summarise(block: Block, c: np.ndarray, matching: bool) -> BlockResult:
    out = BlockResult(block, c.max(1), c.argmax(1))
    if block.real:
        out.col_max, out.col_arg = c.max(0), c.argmax(0)
        if matching and block.la == block.lb:
            from scipy.optimize import linear_sum_assignment

            r, k = linear_sum_assignment(-c)
            out.matched = (r, k, c[r, k])
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
        rows = slice(k.la * d, (k.la + 1) * d)
        if not k.real:
            baseline[k.a, k.b, rows] = np.maximum(baseline[k.a, k.b, rows], res.row_max)
            continue
        _merge(max_corr[k.a, k.b, rows], best[k.a, k.b, rows], res.row_max, res.row_arg + k.lb * d)
        cols = slice(k.lb * d, (k.lb + 1) * d)
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
