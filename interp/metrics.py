"""Losses and accuracies on task prompts, shared by the trainer and the analyzers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int

from interp.tasks import LABEL_POS


def batch_tensor(rows, device) -> torch.Tensor:
    """Rows of a prompt array on ``device``. They may be a slice of a memory-mapped token file or of a broadcast
    loss mask: only these rows are read (and copied when read-only or strided, which torch cannot wrap)."""
    import numpy as np

    return torch.as_tensor(np.require(rows, requirements=["C", "W"]), device=device)


def token_tensor(rows, device) -> Int[torch.Tensor, "batch pos"]:
    """Token rows as int64 (a token file keeps its own, often narrower, dtype on disk)."""
    return batch_tensor(rows, device).long()


def masked_next_token_loss(
    logits: Float[torch.Tensor, "batch pos vocab"],
    tokens: Int[torch.Tensor, "batch pos"],
    loss_mask: Bool[torch.Tensor, "batch pos_minus_1"],
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of next-token predictions where ``loss_mask`` is set. ``reduction='none'`` gives [batch]:
    each sequence's summed loss over its scored positions."""
    lp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -lp.gather(-1, tokens[:, 1:, None]).squeeze(-1) * loss_mask
    if reduction == "none":
        return nll.sum(-1)
    return nll.sum() / loss_mask.sum().clamp_min(1)


def label_logits(logits: Float[torch.Tensor, "batch pos vocab"]) -> Float[torch.Tensor, "batch vocab"]:
    return logits[:, LABEL_POS]


def label_accuracy(logits: Float[torch.Tensor, "batch pos vocab"], tokens: Int[torch.Tensor, "batch pos"]) -> float:
    return float((label_logits(logits).argmax(-1) == tokens[:, LABEL_POS + 1]).float().mean())
