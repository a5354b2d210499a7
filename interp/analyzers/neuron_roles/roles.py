"""The numerics of ``neuron-roles``: vocabulary moments, the unembedding's near-null space, attention-deactivation
scores, and the role rules. Everything is float64 on the model's device; nothing here reads activations.

Shapes: ``w_out`` is [neuron, d_model] (one layer, as ``interp.maths.weights.mlp_out`` returns it), ``w_u`` is
[d_model, vocab] (``interp.maths.weights.unembed``: final norm gain folded in, centred over the vocabulary).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from jaxtyping import Float

ROLES = ("prediction", "suppression", "partition", "entropy", "deactivation")


def read_space(model: Any) -> Float[torch.Tensor, "d_model r"]:
    """An orthonormal basis of the residual directions the unembedding can read: for a LayerNorm model (folded or
    not) the complement of the all-ones direction (the final LayerNorm subtracts the mean over d_model before
    ``W_U`` sees the residual, and ``mlp_out`` removes that component from every ``w_out``); else every direction.
    The complement's basis is Helmert's (column j: 1 on the first j entries, -j on entry j, normalised): exact and
    deterministic, with no decomposition."""
    import torch

    d = model.cfg.d_model
    if getattr(model.cfg, "normalization_type", None) not in ("LN", "LNPre"):
        return torch.eye(d, dtype=torch.float64, device=model.W_U.device)
    j = np.arange(1, d)
    h = (np.arange(d)[:, None] < j[None, :]).astype(np.float64)     # [d, d-1]
    h[j, j - 1] = -j
    return torch.from_numpy(h / np.sqrt(j * (j + 1))).to(model.W_U.device)


def unembed_spectrum(w_u: torch.Tensor, space: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(singular values [r], descending; their left-singular directions [d_model, r], in the residual basis; the
    trace of the Gram ``W_U W_U^T`` on ``space``). Taken from the r x r Gram matrix rather than an SVD of the
    r x vocab matrix: the same directions at a fraction of the cost (vocab 50,257), and float64 keeps the smallest
    directions exact enough (error ~ 1e-16 x the largest over the smallest eigenvalue). The eigen-decomposition is
    LAPACK's through numpy: torch's CPU ``eigh`` took 2-10 s instead of 0.2 s on a 768 x 768 matrix with 2 threads
    on a busy machine."""
    import torch

    gram = (space.T @ (w_u @ w_u.T) @ space).cpu().numpy()          # [r, r]
    evals, evecs = np.linalg.eigh((gram + gram.T) / 2)              # ascending; symmetrised against rounding
    s = torch.from_numpy(np.sqrt(np.clip(evals, 0, None))[::-1].copy()).to(space)
    return s, space @ torch.from_numpy(evecs[:, ::-1].copy()).to(space), float(np.trace(gram))


def vocab_moments(w_out: torch.Tensor, w_u: torch.Tensor, block_entries: int) -> dict[str, torch.Tensor]:
    """Mean, variance, skew and kurtosis (non-excess: a Gaussian gives 3) over the vocabulary of each neuron's
    vocabulary effect ``v = W_U^T w_out``, in float64, ``block_entries`` entries of v at a time. A neuron with
    ``v`` constant (a zero ``w_out``) gets variance 0 and skew = kurtosis = 0 (defined, not NaN)."""
    import torch

    n, vocab = w_out.shape[0], w_u.shape[1]
    rows = max(1, block_entries // vocab)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("mean", "var", "skew", "kurtosis")}
    for s in range(0, n, rows):
        x = w_out[s:s + rows] @ w_u                     # [rows, vocab]
        mean = x.mean(1)
        x.sub_(mean[:, None])
        x2 = x * x
        m2 = x2.mean(1)
        m3, m4 = _rowdot(x2, x) / vocab, _rowdot(x2, x2) / vocab   # batched dots: no [rows, vocab] temporaries
        ok = m2 > 0
        safe = torch.where(ok, m2, torch.ones_like(m2))
        out["mean"].append(mean)
        out["var"].append(m2)
        out["skew"].append(torch.where(ok, m3 / safe**1.5, torch.zeros_like(m2)))
        out["kurtosis"].append(torch.where(ok, m4 / safe**2, torch.zeros_like(m2)))
    return {k: torch.cat(v) for k, v in out.items()}


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.unsqueeze(1) @ b.unsqueeze(2)).view(-1)


def query_directions(model: Any, k_first: dict[int, torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """For every head (layer l', head h) with a mean first-position key: the residual direction
    ``diag(g) W_Q[l', h] k_first[l', h]`` [d_model], where g is the gain of the block's pre-attention norm (folded
    in as ``interp.maths.weights.mlp_in`` folds the pre-MLP gain into ``W_in``; 1 without one). A neuron's dot
    product with it is how much one unit of its activation raises that head's query-key product with position 0.
    Returns ([d_model, pair], [(l', h) per pair])."""
    import torch

    from interp.maths.weights import norm_kind

    cols, pairs = [], []
    for lp in sorted(k_first):
        w_q = model.W_Q[lp].detach().to(torch.float64)                # [head, d_model, d_head]
        block = model.blocks[lp]
        if norm_kind(model) is not None and hasattr(block, "ln1") and hasattr(block.ln1, "w"):
            w_q = w_q * block.ln1.w.detach().to(torch.float64)[None, :, None]
        cols.append(torch.einsum("hdk,hk->dh", w_q, k_first[lp].to(w_q)))
        pairs += [(lp, h) for h in range(w_q.shape[0])]
    if not cols:
        return torch.zeros(model.cfg.d_model, 0, dtype=torch.float64, device=model.W_U.device), []
    return torch.cat(cols, dim=1), pairs


def deactivation(w_out: torch.Tensor, qdirs: torch.Tensor, pairs: list[tuple[int, int]], layer: int
                 ) -> dict[str, np.ndarray]:
    """Per neuron of ``layer``: its top later head (largest positive score ``w_out . qdir``), that score, and its
    size in units of the root mean square of the same head's scores over the layer's *other* neurons (``z``;
    leaving the neuron out lets z grow past sqrt(neurons), and inf means no other neuron touches that head).
    Neurons with no later head or no positive score get head and layer -1, score and z 0."""
    n = w_out.shape[0]
    later = [i for i, (lp, _) in enumerate(pairs) if lp > layer]
    out = {"score": np.zeros(n), "z": np.zeros(n), "layer": np.full(n, -1, np.int64), "head": np.full(n, -1, np.int64)}
    if not later:
        return out
    scores = (w_out @ qdirs[:, later]).cpu().numpy()                     # [neuron, later pair]
    best = scores.argmax(1)                                               # first maximum: deterministic
    top = scores[np.arange(n), best]
    rms = np.sqrt(_others_sq(scores**2, best) / max(n - 1, 1))
    with np.errstate(divide="ignore"):
        z = np.where(rms > 0, top / np.where(rms > 0, rms, 1.0), np.inf)
    hit = top > 0
    out["score"][hit], out["z"][hit] = top[hit], z[hit]
    out["layer"][hit] = [pairs[later[b]][0] for b in best[hit]]
    out["head"][hit] = [pairs[later[b]][1] for b in best[hit]]
    return out


def _others_sq(sq: np.ndarray, col: np.ndarray) -> np.ndarray:
    """For each row n, the sum over the other rows of ``sq[:, col[n]]``. Subtracting a row's own square from the
    column's total cancels catastrophically when that row dominates (a planted neuron); so each column's largest
    square is left out by masking, and only smaller squares are ever subtracted."""
    n = sq.shape[0]
    top = sq.argmax(0)                                   # per column, the row with the largest square
    masked = sq.copy()
    masked[top, np.arange(sq.shape[1])] = 0.0
    without_top = masked.sum(0)
    mine = np.arange(n)
    return np.where(top[col] == mine, without_top[col], sq.sum(0)[col] - sq[mine, col])


def classify(stats: dict[str, np.ndarray], cfg: Any) -> dict[str, np.ndarray]:
    """Boolean [layer, neuron] flags of each role from the [layer, neuron] statistics (the rules: ``method.md``)."""
    kurt, skew = stats["vocab_kurtosis"], stats["vocab_skew"]
    heavy = (kurt > cfg.kurtosis_min) & (stats["var_ratio"] > cfg.min_var_ratio)
    norm = stats["w_out_norm"]
    norm_cut = np.percentile(norm, cfg.entropy_norm_percentile, axis=1, keepdims=True)
    return {
        "prediction": heavy & (skew > cfg.skew_min),
        "suppression": heavy & (skew < -cfg.skew_min),
        "partition": (kurt <= cfg.kurtosis_min) & (stats["var_ratio"] > cfg.partition_var_ratio)
        & (stats["bimodality"] > cfg.partition_bimodality),
        "entropy": (stats["null_share"] > cfg.null_share_min) & (norm >= norm_cut) & (norm > 0),
        "deactivation": stats["deact_z"] > cfg.deact_z_min,
    }


def bimodality(skew: np.ndarray, kurt: np.ndarray) -> np.ndarray:
    """Sarle's bimodality coefficient (skew^2 + 1) / kurtosis (1 for any two-valued distribution, 5/9 for a
    uniform, 1/3 for a Gaussian); 0 where the kurtosis is 0 (a constant v)."""
    return np.divide(skew**2 + 1, kurt, out=np.zeros_like(kurt), where=kurt > 0)


# the statistic that ranks a role's neurons in the records (largest first)
RANK_BY = {"prediction": "vocab_kurtosis", "suppression": "vocab_kurtosis", "partition": "var_ratio",
           "entropy": "w_out_norm", "deactivation": "deact_score"}


def top_neurons(flag: np.ndarray, score: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` flagged neurons of one layer, largest ``score`` first (ties: the lower index)."""
    idx = np.flatnonzero(flag)
    order = np.lexsort((idx, -score[idx]))
    return [int(i) for i in idx[order][:k]]


def top_tokens(v: np.ndarray, k: int) -> tuple[list[int], list[int]]:
    """The ``k`` token ids a vocabulary effect raises most and lowers most (ties: the lower id)."""
    order = np.argsort(-v, kind="stable")
    low = np.argsort(v, kind="stable")
    return [int(i) for i in order[:k]], [int(i) for i in low[:k]]
