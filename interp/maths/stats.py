"""Streaming statistics whose memory does not grow with the number of tokens.

Both accumulators guard against cancellation, the failure of raw-moment formulas (``Sxx - Sx^2/n``) when a
neuron's mean is large against its spread (measured errors of 0.13-0.22 in r that way, even with float64
accumulators):

- ``RunningMoments`` merges each chunk's *central* moments into the running ones (Chan et al. / Pebay's pairwise
  update), in float64.
- ``StreamingCorrelation`` (``ShiftedColumns`` per input, ``CrossSums`` between them) shifts every block by a fixed
  per-neuron reference (the first block's mean), so the float32 GEMM multiplies small, centred numbers, and
  accumulates the shifted sums in float64; the final Pearson formula (``pearson``) is then applied to shifted sums,
  where the correction term ``Sx Sy / n`` is small.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float


def cosine_matrix(v: np.ndarray) -> np.ndarray:
    """[row, row] cosines between the rows of v (a zero row has cosine 0 with everything)."""
    n = np.linalg.norm(v, axis=1)
    u = v / np.where(n > 0, n, 1)[:, None]
    return u @ u.T


class RunningMoments:
    """Per-column mean, variance, skew, kurtosis (non-excess) and activation frequency (fraction > threshold).

    ``update(x)`` with x: [token, neuron]. Constant columns give variance 0 and skew/kurtosis NaN-free values of 0
    and 0 (documented: undefined moments are reported as 0 rather than NaN).
    """

    def __init__(self, n_features: int, active_threshold: float = 0.0, device: str | torch.device = "cpu"):
        self.n = 0
        kw = dict(dtype=torch.float64, device=device)
        self.mean = torch.zeros(n_features, **kw)
        self.m2 = torch.zeros(n_features, **kw)
        self.m3 = torch.zeros(n_features, **kw)
        self.m4 = torch.zeros(n_features, **kw)
        self.active = torch.zeros(n_features, **kw)
        self.threshold = active_threshold

    # Rows merged at a time: a 2,048 x 256 float64 block and its temporaries stay in cache; 16,384-row blocks ran
    # 9x slower per token here, every elementwise pass going to memory.
    BLOCK_ROWS = 2048

    def update(self, x: Float[torch.Tensor, "token neuron"]) -> None:
        for start in range(0, x.shape[0], self.BLOCK_ROWS):
            self._merge(x[start:start + self.BLOCK_ROWS])

    def _merge(self, x: torch.Tensor) -> None:
        nb = x.shape[0]
        if nb == 0:
            return
        ones = torch.ones(nb, dtype=torch.float64, device=x.device)
        # column sums as matrix-vector products (torch.sum(dim=0) on float64 is a slow strided reduction)
        self.active += ones @ (x > self.threshold).to(torch.float64)
        d = x.to(torch.float64, copy=True)   # centred in place below: never the caller's tensor
        mb = (ones @ d) / nb
        d -= mb
        d2 = d * d
        m2b, m3b, m4b = ones @ d2, ones @ (d2 * d), ones @ d2.square_()
        na, n = self.n, self.n + nb
        delta = mb - self.mean
        m2a, m3a, m4a = self.m2, self.m3, self.m4
        self.m4 = (m4a + m4b + delta**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
                   + 6 * delta**2 * (na * na * m2b + nb * nb * m2a) / n**2 + 4 * delta * (na * m3b - nb * m3a) / n)
        self.m3 = m3a + m3b + delta**3 * na * nb * (na - nb) / n**2 + 3 * delta * (na * m2b - nb * m2a) / n
        self.m2 = m2a + m2b + delta**2 * na * nb / n
        self.mean = self.mean + delta * nb / n
        self.n = n

    def result(self) -> dict[str, torch.Tensor]:
        n = max(self.n, 1)
        var = self.m2 / n
        safe = torch.where(var > 0, var, torch.ones_like(var))
        skew = torch.where(var > 0, (self.m3 / n) / safe**1.5, torch.zeros_like(var))
        kurt = torch.where(var > 0, (self.m4 / n) / safe**2, torch.zeros_like(var))
        return {"mean": self.mean, "var": var, "skew": skew, "kurtosis": kurt, "act_freq": self.active / n}


class Workspace:
    """Scratch tensors reused across blocks and accumulators, by name: fresh multi-MB tensors per block cost page
    faults (a third of the run as system time), and accumulators that run one after another can share one."""

    def __init__(self):
        self._t: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
        t = self._t.get(name)
        if t is None or t.shape != torch.Size(shape) or t.dtype != dtype or t.device != torch.device(device):
            t = self._t[name] = torch.zeros(shape, dtype=dtype, device=device)   # zeros: no garbage ever summed
        return t


class ShiftedColumns:
    """Streaming float64 sums of one input's columns after a fixed shift: ``n``, ``s = sum(x - c)`` and either
    ``sq = sum((x - c)^2)`` per column or, with ``gram``, the whole ``G = sum((x - c)^T (x - c))`` [d, d].

    The shift ``c`` is the first block's column mean, so the float32 products are of small, centred numbers. The
    Gram matrix is what a rotated copy of the input needs: for ``z = x R`` shifted by ``c R``, ``sum((z - cR)^2)``
    is ``diag(R^T G R)``, so correlations against any rotation come from sums already taken (``rotated``)."""

    def __init__(self, gemm_dtype: torch.dtype = torch.float32, gram: bool = False, ws: Workspace | None = None):
        self.gemm_dtype, self.gram = gemm_dtype, gram
        self.ws = ws or Workspace()   # shared scratch; ``shifted``'s own buffer is private (several are live at once)
        self.n = 0
        self.shift = self.s = self.sq = self.g = None
        self._buf: torch.Tensor | None = None
        self._ones: torch.Tensor | None = None

    def shifted(self, x: Float[torch.Tensor, "token d"]) -> Float[torch.Tensor, "token d"]:
        """``x - c`` in the GEMM dtype, in a buffer reused block after block (valid until the next call)."""
        if self.shift is None:
            self.shift = x.to(self.gemm_dtype).mean(0)
            f64 = dict(dtype=torch.float64, device=x.device)
            self.s = torch.zeros(x.shape[1], **f64)
            if self.gram:
                self.g = torch.zeros(x.shape[1], x.shape[1], **f64)
            else:
                self.sq = torch.zeros(x.shape[1], **f64)
        if self._buf is None or self._buf.shape[0] < x.shape[0]:
            # preallocated: fresh multi-MB tensors per block cost page faults (a third of the time as sys time)
            self._buf = torch.empty(x.shape, dtype=self.gemm_dtype, device=x.device)
            self._ones = torch.ones(x.shape[0], dtype=self.gemm_dtype, device=x.device)
        return torch.sub(x, self.shift, out=self._buf[:x.shape[0]])

    def add(self, xs: Float[torch.Tensor, "token d"]) -> None:
        """Adds a block returned by ``shifted``."""
        ones = self._ones[:xs.shape[0]]
        self.s += ones @ xs          # column sums as matrix-vector products: torch.sum(dim=0) is a slow reduction
        if self.gram:
            d = xs.shape[1]
            add_widened(self.g, _gram(xs, self.ws), self.ws.get("wide", (d, d), torch.float64, xs.device))
        else:
            self.sq += ones @ (xs * xs)
        self.n += xs.shape[0]

    def variance_sums(self) -> Float[torch.Tensor, " d"]:
        """Per column ``sum((x - mean)^2)`` (n times the variance), clamped at 0."""
        sq = torch.diagonal(self.g) if self.gram else self.sq
        return (sq - self.s**2 / self.n).clamp_min(0)

    def gram_matrix(self) -> Float[torch.Tensor, "d d"]:
        """The whole symmetric Gram matrix (only its upper triangle is accumulated)."""
        return torch.triu(self.g) + torch.triu(self.g, 1).T

    def rotated(self, r: Float[torch.Tensor, "d d"]) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, variance sums) of the input multiplied by ``r`` (float64), from the Gram matrix alone."""
        s = self.s @ r
        sq = ((self.gram_matrix() @ r) * r).sum(0)
        return s, (sq - s**2 / self.n).clamp_min(0)


def _gram(xs: torch.Tensor, ws: Workspace, panels: int = 4) -> torch.Tensor:
    """``xs^T xs`` [d, d] in the GEMM dtype, of which only the upper triangle is computed (and counts).

    The triangle is taken as ``panels`` row strips (strip i: ``xs_i^T xs[:, i:]``), 0.62-0.67 of a full GEMM's time
    at d 512-3,072 here; ``gram_matrix`` mirrors it once, at the end. (BLAS ``ssyrk`` from scipy did half the work
    but its OpenBLAS threads spun against torch's, making the whole pass 5x slower on 2 cores.)"""
    d = xs.shape[1]
    out = ws.get("gram", (d, d), xs.dtype, xs.device)   # zeros below the diagonal, never written
    p = min(panels, max(1, d // 128))
    edges = [round(i * d / p) for i in range(p + 1)]
    for lo, hi in zip(edges, edges[1:]):
        torch.mm(xs[:, lo:hi].T, xs[:, lo:], out=out[lo:hi, lo:])
    return out


def pearson(n: int, sx, sy, vx, vy, sxy) -> Float[torch.Tensor, "a b"]:
    """Pearson r [a, b] from shifted sums: ``sx``/``sy`` column sums, ``vx``/``vy`` variance sums, ``sxy`` cross
    sums. A column with zero variance gets r = 0, not NaN."""
    # one [a, b] temporary, scaled in place by each side's 1 / sd (0 where the variance is 0): the where/outer form
    # made five full-size temporaries and took a third of a lockstep step's fixed cost at 12,288 neurons
    cov = torch.addr(sxy, sx, sy, alpha=-1.0 / n)
    cov *= _inverse_sd(vx)[:, None]
    cov *= _inverse_sd(vy)[None, :]
    return cov.clamp_(-1, 1)


def _inverse_sd(v: torch.Tensor) -> torch.Tensor:
    sd = v.sqrt()
    return torch.where(sd > 0, 1.0 / torch.where(sd > 0, sd, torch.ones_like(sd)), torch.zeros_like(sd))


class CrossSums:
    """float64 ``sum(xs^T ys)`` [a, b] over blocks of two shifted inputs."""

    def __init__(self, ws: Workspace | None = None):
        self.ws = ws or Workspace()
        self.sxy: torch.Tensor | None = None

    def add(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
        shape = (xs.shape[1], ys.shape[1])
        if self.sxy is None:
            self.sxy = torch.zeros(shape, dtype=torch.float64, device=xs.device)
        part = torch.mm(xs.T, ys, out=self.ws.get("cross", shape, xs.dtype, xs.device))
        add_widened(self.sxy, part, self.ws.get("wide", shape, torch.float64, xs.device))


def add_widened(acc: torch.Tensor, part: torch.Tensor, wide: torch.Tensor) -> None:
    """``acc += part`` for a float64 ``acc`` and a float32 ``part``, through the float64 buffer ``wide``.

    A mixed-dtype in-place add (``acc += part``) ran at a fifth of the speed here (9.6 ms vs 1.7 ms for 2,048^2: it
    takes torch's slow casting path), which cost a quarter of the time of the 1,024-row GEMM it follows."""
    acc += wide.copy_(part)


class StreamingCorrelation:
    """Pearson correlation between every column of X [token, a] and every column of Y [token, b], streamed.

    Per block of ``block_rows`` tokens: shift by the first block's column means, multiply in ``gemm_dtype`` (float32
    default) on the chunk's device, accumulate in float64. Result [a, b]. A column with zero variance gets
    correlation 0 (not NaN).
    """

    def __init__(self, gemm_dtype: torch.dtype = torch.float32, block_rows: int = 1024):
        # float32 sums over k rows carry a relative error ~ sqrt(k) * 6e-8; blocks of 1,024 rows keep r within 1e-6
        # of float64 (4,096-row blocks gave 1.2e-6), and the GEMMs stay large enough to run near peak.
        self.block_rows = block_rows
        self.x, self.y, self.xy = ShiftedColumns(gemm_dtype), ShiftedColumns(gemm_dtype), CrossSums()

    @property
    def n(self) -> int:
        return self.x.n

    def update(self, x: Float[torch.Tensor, "token a"], y: Float[torch.Tensor, "token b"]) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same number of tokens, got {x.shape[0]} and {y.shape[0]}")
        for start in range(0, x.shape[0], self.block_rows):
            xs = self.x.shifted(x[start:start + self.block_rows])
            ys = self.y.shifted(y[start:start + self.block_rows])
            self.x.add(xs)
            self.y.add(ys)
            self.xy.add(xs, ys)

    def result(self) -> Float[torch.Tensor, "a b"]:
        if self.n == 0:
            raise ValueError("no data was streamed")
        return pearson(self.n, self.x.s, self.y.s, self.x.variance_sums(), self.y.variance_sums(), self.xy.sxy)


class ColumnPairs:
    """Pearson correlations of chosen column pairs between several inputs over a stream of tokens, per token block
    (so that a bootstrap can resample the blocks).

    An input (a model's [token, unit] activations, by key) keeps its column sums once, shifted by its first rows'
    means; a pair set ``name = (x key, y key, index)`` pairs column k of x with column ``index[k]`` of y (all of y's
    columns in order when ``index`` is None) and keeps only its cross sums. Every pair that reads an input shares
    its column sums: with n seeds, 2n(n-1) pair sets over n-2n inputs cost one product each per token, not five.
    Products are float32 over at most ``rows`` tokens (about 1e-7 relative error, as ``StreamingCorrelation``'s
    blocks), running sums float64. Memory: float64 sums per input and pair set, x ``n_blocks``; none per token."""

    def __init__(self, pairs: dict, n_blocks: int = 1, device: str | torch.device = "cpu", rows: int = 1024):
        self.pairs, self.n_blocks, self.device, self.rows = pairs, n_blocks, device, rows
        self.shift: dict = {}
        self.cols: dict = {}     # key -> [block, 3, unit]: n, sum, sum of squares (shifted)
        self.cross: dict = {}    # name -> [block, unit]
        self.index = {k: None if idx is None else torch.as_tensor(idx, dtype=torch.long, device=device)
                      for k, (_, _, idx) in pairs.items()}

    def add(self, acts: dict, block: int = 0) -> None:
        """One batch: {key: [token, unit]} for (at least) every input the pairs read, the same tokens in each."""
        keys = {k for x, y, _ in self.pairs.values() for k in (x, y)}
        for start in range(0, len(next(iter(acts.values()))), self.rows):
            shifted = {}
            for k in keys:
                x = acts[k][start:start + self.rows]
                if k not in self.shift:
                    self.shift[k] = x.double().mean(0)
                    self.cols[k] = torch.zeros(self.n_blocks, 3, x.shape[1], dtype=torch.float64, device=x.device)
                xs = shifted[k] = x - self.shift[k].to(x.dtype)
                c = self.cols[k][block]
                c[0] += len(xs)
                c[1] += xs.sum(0).double()
                c[2] += (xs * xs).sum(0).double()
            for name, (x, y, _) in self.pairs.items():
                ys = shifted[y] if self.index[name] is None else shifted[y][:, self.index[name]]
                if name not in self.cross:
                    self.cross[name] = torch.zeros(self.n_blocks, ys.shape[1], dtype=torch.float64, device=ys.device)
                self.cross[name][block] += (shifted[x] * ys).sum(0).double()

    def correlation(self, name, weights: Float[torch.Tensor, "draw block"] | None = None
                    ) -> Float[torch.Tensor, "... unit"]:
        """r of pair set ``name`` over every token ([unit]), or per row of ``weights`` (how many times each block
        is drawn: [draw, unit]). A pair with a constant side has r = 0, not NaN."""
        x, y, _ = self.pairs[name]
        idx = self.index[name]

        def total(t: torch.Tensor) -> torch.Tensor:
            return t.sum(0) if weights is None else torch.einsum("rb,b...->r...", weights.to(t), t)

        cx, cy, sxy = total(self.cols[x]), total(self.cols[y]), total(self.cross[name])
        if idx is not None:
            cy = cy[..., idx]
        n, sx, sxx = cx.unbind(-2)
        sy, syy = cy[..., 1, :], cy[..., 2, :]
        n = n.clamp_min(1)
        cov, vx, vy = sxy - sx * sy / n, (sxx - sx * sx / n).clamp_min(0), (syy - sy * sy / n).clamp_min(0)
        denom = (vx * vy).sqrt()
        return torch.where(denom > 0, cov / torch.where(denom > 0, denom, 1.0), 0.0).clamp(-1, 1)
