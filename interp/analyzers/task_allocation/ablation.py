"""Mean-ablation of MLP neurons, many variants per forward pass: the losses and accuracies task-allocation checks its
attribution against."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from interp.checkpoints.hooks import act_name

if TYPE_CHECKING:
    from interp.prompts.prompt_set import PromptSet

Ablation = dict[int, np.ndarray]   # layer -> neurons replaced by their mean activation


def by_layer(units: np.ndarray, d_mlp: int) -> Ablation:
    """Flat unit indices (layer * d_mlp + neuron) grouped by layer."""
    out: dict[int, list[int]] = {}
    for u in np.asarray(units).tolist():
        out.setdefault(u // d_mlp, []).append(u % d_mlp)
    return {layer: np.asarray(v) for layer, v in out.items()}


def task_losses(model, prompts: PromptSet, ablate: Ablation, mean_act: list[np.ndarray],
                batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-task mean loss and accuracy with the given neurons mean-ablated: ([task], [task]); NaN for a task without
    prompts."""
    n = len(prompts.task_names)
    loss, acc = np.full(n, np.nan), np.full(n, np.nan)
    for t in range(n):
        part = prompts.subset(prompts.task_id == t)
        if len(part):
            (loss[t],), (acc[t],) = ablation_losses(model, part, [ablate], mean_act, batch_size)
    return loss, acc


def ablation_losses(model, prompts: PromptSet, variants: list[Ablation], mean_act: list[np.ndarray],
                    batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss (summed over each prompt's answer tokens) and accuracy (every answer token the greedy prediction)
    over ``prompts`` under each ablation variant: ([variant], [variant]).

    All variants run in one batch (each prompt repeated once per variant, each copy with its own neurons replaced),
    because on small models a forward call's fixed cost dominates: 16 single-neuron ablations cost one call.
    ``mean_act[layer]`` is [pos, neuron]: the value an ablated neuron takes at each position."""
    import torch

    from interp.maths.losses import answer_correct, batch_tensor, masked_next_token_loss, token_tensor

    device = next(model.parameters()).device
    n_var = len(variants)
    hooks = [(act_name("post", layer), _patch(n_var, layer, variants, mean_act, model.cfg.d_mlp, device))
             for layer in sorted({layer for v in variants for layer in v})]
    per_chunk = max(1, batch_size // n_var)
    loss_sum, correct = np.zeros(n_var), np.zeros(n_var)
    with torch.inference_mode():
        for s in range(0, len(prompts), per_chunk):
            toks = token_tensor(prompts.tokens[s:s + per_chunk], device)
            mask = batch_tensor(prompts.loss_mask[s:s + per_chunk], device)
            c = len(toks)
            toks_v, mask_v = toks.repeat(n_var, 1), mask.repeat(n_var, 1)
            logits = model.run_with_hooks(toks_v, fwd_hooks=hooks)
            nll = masked_next_token_loss(logits, toks_v, mask_v, reduction="none")
            loss_sum += nll.double().view(n_var, c).sum(1).cpu().numpy()
            correct += answer_correct(logits, toks_v, mask_v).view(n_var, c).sum(1).cpu().numpy()
    return loss_sum / len(prompts), correct / len(prompts)


def _patch(n_var: int, layer: int, variants: list[Ablation], mean_act: list[np.ndarray], d_mlp: int, device):
    import torch

    mask = torch.zeros(n_var, d_mlp, dtype=torch.bool, device=device)            # [variant, neuron]
    for i, v in enumerate(variants):
        if layer in v and len(v[layer]):
            mask[i, torch.as_tensor(v[layer], device=device)] = True
    mean = torch.as_tensor(mean_act[layer], dtype=torch.float32, device=device)  # [pos, neuron]

    def patch(act, hook):
        b, pos, _ = act.shape
        act = act.view(n_var, b // n_var, pos, -1)
        return torch.where(mask[:, None, None, :], mean[None, None, :pos].to(act.dtype), act).view(b, pos, -1)

    return patch
