"""Weights as the papers read them: the final normalisation folded into the unembedding, and what the next
normalisation would remove taken out of what the MLP writes.

Weight-based neuron metrics (the vocabulary effect ``W_U^T w_out``, ``cos(w_in, w_out)``, input weights) change with
how a model happens to store its weights: a LayerNorm gain of 3 on one residual direction scales every logit read
from it, and a constant component of ``w_out`` is erased by the next LayerNorm's centring. Gurnee et al. (arXiv
2401.12181) read GPT-2's neurons through TransformerLens' ``fold_ln``, ``center_writing_weights`` and
``center_unembed``. This module applies the same three to float64 copies of the weights, whatever processing the
model was loaded with (so the activation cache and these metrics may differ in processing, and each result records
what was applied):

- ``unembed``: ``W_U`` with the final norm's gain folded in (``diag(w) W_U``) and, with ``center_unembed``, each
  row centred over the vocabulary (adding a constant to every logit changes no probability);
- ``mlp_out``: ``W_out`` rows with, for LayerNorm models (not RMSNorm: it does not subtract the mean), their mean over
  ``d_model`` removed (``center_writing_weights``);
- ``mlp_in``: ``W_in`` with the block's second norm's gain folded in (``diag(w) W_in``);
- ``embed``: ``W_E`` rows centred over ``d_model`` for LayerNorm models, like ``W_out``.

A model without normalisation (the toy models) or with its norms already folded (``LNPre``) is read as stored, and
the record says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from jaxtyping import Float


def norm_kind(model: Any) -> str | None:
    """``"LN"``, ``"RMS"`` (a gain to fold), or None (no normalisation, or already folded: ``LNPre``/``RMSPre``)."""
    kind = getattr(model.cfg, "normalization_type", None)
    return kind if kind in ("LN", "RMS") else None


def processing_record(model: Any, center_unembed: bool = True, center_writing_weights: bool = True
                      ) -> dict[str, Any]:
    """What ``unembed`` / ``mlp_out`` / ``mlp_in`` apply to this model: stored in every result that uses them."""
    kind = norm_kind(model)
    return {"fold_ln": kind is not None, "norm": kind or str(getattr(model.cfg, "normalization_type", None)),
            "center_unembed": center_unembed,
            "center_writing_weights": center_writing_weights and kind == "LN"}


def unembed(model: Any, center: bool = True) -> Float[torch.Tensor, "d_model vocab"]:
    """float64 ``W_U`` with the final norm's gain folded in and, with ``center``, centred over the vocabulary."""
    import torch

    w_u = model.W_U.detach().to(torch.float64)
    if norm_kind(model) is not None:
        w_u = model.ln_final.w.detach().to(torch.float64)[:, None] * w_u
    return w_u - w_u.mean(dim=1, keepdim=True) if center else w_u


def mlp_out(model: Any, layer: int, center: bool = True) -> Float[torch.Tensor, "neuron d_model"]:
    """float64 ``W_out`` of ``layer``; with ``center`` and a LayerNorm model, each row's mean over d_model removed
    (the next LayerNorm subtracts it anyway)."""
    import torch

    w_out = model.blocks[layer].mlp.W_out.detach().to(torch.float64)
    if center and norm_kind(model) == "LN":
        w_out = w_out - w_out.mean(dim=1, keepdim=True)
    return w_out


def embed(model: Any, center: bool = True) -> Float[torch.Tensor, "vocab d_model"]:
    """float64 ``W_E``; with ``center`` and a LayerNorm model, each row's mean over d_model removed (a writing
    weight: the next LayerNorm subtracts it anyway)."""
    import torch

    w_e = model.W_E.detach().to(torch.float64)
    if center and norm_kind(model) == "LN":
        w_e = w_e - w_e.mean(dim=1, keepdim=True)
    return w_e


def mlp_in(model: Any, layer: int) -> Float[torch.Tensor, "d_model neuron"]:
    """float64 ``W_in`` of ``layer`` with the block's pre-MLP norm gain folded in."""
    import torch

    w_in = model.blocks[layer].mlp.W_in.detach().to(torch.float64)
    if norm_kind(model) is not None and hasattr(model.blocks[layer], "ln2") and hasattr(model.blocks[layer].ln2, "w"):
        w_in = model.blocks[layer].ln2.w.detach().to(torch.float64)[:, None] * w_in
    return w_in
