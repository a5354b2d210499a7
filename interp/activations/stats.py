"""Streaming statistics whose memory does not grow with the number of tokens.

Both accumulators guard against cancellation, the failure of raw-moment formulas (``Sxx - Sx^2/n``) when a
neuron's mean is large against its spread (shared/FIELD-NOTES.md measured errors of 0.13-0.22 in r that way):

- ``RunningMoments`` merges each chunk's *central* moments into the running ones (Chan et al. / Pebay's pairwise
  update), in float64.
- ``StreamingCorrelation`` shifts every chunk by a fixed per-neuron reference (the first chunk's mean), so the float32
  GEMM multiplies small, centred numbers, and accumulates the shifted sums in float64; the final Pearson formula is
  then applied to shifted sums, where the correction term ``Sx Sy / n`` is small.
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

    def update(self, x: Float[torch.Tensor, "token neuron"]) -> None:
        x = x.to(torch.float64)
        nb = x.shape[0]
        if nb == 0:
            return
        mb = x.mean(0)
        d = x - mb
        d2 = d * d
        m2b, m3b, m4b = d2.sum(0), (d2 * d).sum(0), (d2 * d2).sum(0)
        self.active += (x > self.threshold).sum(0).to(torch.float64)
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


class StreamingCorrelation:
    """Pearson correlation between every column of X [token, a] and every column of Y [token, b], streamed.

    Per chunk: shift by the first chunk's column means, multiply in ``gemm_dtype`` (float32 default) on the chunk's
    device, accumulate in float64. Result [a, b]. A column with zero variance gets correlation 0 (not NaN).
    """

    def __init__(self, gemm_dtype: torch.dtype = torch.float32, block_rows: int = 1024):
        self.gemm_dtype = gemm_dtype
        # float32 sums over k rows carry a relative error ~ sqrt(k) * 6e-8; blocks of 1,024 rows keep r within 1e-6
        # of float64 (4,096-row blocks gave 1.2e-6), and the GEMMs stay large enough to run near peak.
        self.block_rows = block_rows
        self.n = 0
        self.shift_x = self.shift_y = None
        self.sx = self.sy = self.sxx = self.syy = self.sxy = None
        self._ones: torch.Tensor | None = None

    def update(self, x: Float[torch.Tensor, "token a"], y: Float[torch.Tensor, "token b"]) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same number of tokens, got {x.shape[0]} and {y.shape[0]}")
        if x.shape[0] == 0:
            return
        if self.shift_x is None:
            self.shift_x = x.to(self.gemm_dtype).mean(0)
            self.shift_y = y.to(self.gemm_dtype).mean(0)
            f64 = dict(dtype=torch.float64, device=x.device)
            self.sx = torch.zeros(x.shape[1], **f64)
            self.sy = torch.zeros(y.shape[1], **f64)
            self.sxx = torch.zeros(x.shape[1], **f64)
            self.syy = torch.zeros(y.shape[1], **f64)
            self.sxy = torch.zeros(x.shape[1], y.shape[1], **f64)
        for start in range(0, x.shape[0], self.block_rows):
            self._block(x[start:start + self.block_rows], y[start:start + self.block_rows])
        self.n += x.shape[0]

    def _block(self, x: torch.Tensor, y: torch.Tensor) -> None:
        xs = x.to(self.gemm_dtype) - self.shift_x
        ys = y.to(self.gemm_dtype) - self.shift_y
        if self._ones is None or self._ones.shape[0] != xs.shape[0]:
            self._ones = torch.ones(xs.shape[0], dtype=self.gemm_dtype, device=xs.device)
        # column sums as matrix-vector products: torch.sum(dim=0, dtype=float64) ran at 0.7 GB/s here (FIELD-NOTES)
        self.sx += (self._ones @ xs).double()
        self.sy += (self._ones @ ys).double()
        self.sxx += (self._ones @ (xs * xs)).double()
        self.syy += (self._ones @ (ys * ys)).double()
        self.sxy += (xs.T @ ys).double()

    def result(self) -> Float[torch.Tensor, "a b"]:
        if self.n == 0:
            raise ValueError("no data was streamed")
        n = self.n
        cov = self.sxy - torch.outer(self.sx, self.sy) / n
        vx = (self.sxx - self.sx**2 / n).clamp_min(0)
        vy = (self.syy - self.sy**2 / n).clamp_min(0)
        denom = torch.outer(vx.sqrt(), vy.sqrt())
        return torch.where(denom > 0, cov / torch.where(denom > 0, denom, torch.ones_like(denom)),
                           torch.zeros_like(cov)).clamp(-1, 1)
