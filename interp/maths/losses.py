"""Losses and accuracies on prompts, shared by the trainer and the analyzers (analyzers never import each other:
what two of them measure alike lives here)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int

from interp.toys.tasks import LABEL_POS


def batch_tensor(rows, device) -> torch.Tensor:
    """Rows of a prompt array on ``device``. They may be a slice of a memory-mapped token file or of a broadcast
    loss mask: only these rows are read (and copied when read-only or strided, which torch cannot wrap)."""
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


def answer_correct(logits: Float[torch.Tensor, "batch pos vocab"], tokens: Int[torch.Tensor, "batch pos"],
                   loss_mask: Bool[torch.Tensor, "batch pos_minus_1"]) -> Bool[torch.Tensor, " batch"]:
    """Whether each row's answer is the model's greedy prediction: every scored next token is the argmax (teacher
    forced; a one-token answer: the argmax at the label position is the label)."""
    hit = logits[:, :-1].argmax(-1) == tokens[:, 1:]
    return (hit | ~loss_mask).all(-1) & loss_mask.any(-1)


def in_chunks(rows: np.ndarray, size: int):
    """Consecutive pieces of at most ``size`` of an index array."""
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def row_losses(model, tokens, mask) -> Float[torch.Tensor, " batch"]:
    """Each prompt row's summed scored next-token loss (a graph to the weights unless called without grad)."""
    device = next(model.parameters()).device
    toks = token_tensor(tokens, device)
    return masked_next_token_loss(model(toks), toks, batch_tensor(mask, device), reduction="none")


def summed_loss(model, tokens, mask) -> torch.Tensor:
    """Summed scored next-token loss of a batch of prompt rows (a torch scalar)."""
    return row_losses(model, tokens, mask).sum()


def prompt_losses(model, tokens, mask, rows: np.ndarray, chunk: int) -> np.ndarray:
    """[len(rows)] each prompt's summed scored loss (float64), ``chunk`` rows per forward pass, no graph built."""
    with torch.inference_mode():
        out = [row_losses(model, tokens[c], mask[c]) for c in in_chunks(rows, chunk)]
    return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)


def scored_count(mask, rows: np.ndarray, chunk: int) -> int:
    """How many next-token predictions of prompts ``rows`` are scored (read ``chunk`` rows at a time)."""
    return sum(int(np.count_nonzero(mask[c])) for c in in_chunks(rows, chunk))


def task_loss(model, prompts, rows: np.ndarray, chunk: int) -> float:
    """Mean scored loss of prompts ``rows``, chunked (no graph is built), summed in float64."""
    total = float(prompt_losses(model, prompts.tokens, prompts.loss_mask, rows, chunk).sum())
    return total / max(1, scored_count(prompts.loss_mask, rows, chunk))
