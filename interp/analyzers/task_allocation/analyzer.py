"""``task-allocation``: which MLP neurons each task uses, and how tasks compete for them (Huang et al., arXiv
2605.29548).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.checkpoints.hooks import act_name, mlp_hooks
from interp.config import Options, option
from interp.maths.stats import cosine_matrix
from interp.results import Result
from interp.runner.context import Needs
from interp.toys.tasks import LABEL_POS

if TYPE_CHECKING:

    from interp.prompts.prompt_set import PromptSet


@dataclass(frozen=True)
class TaskAllocationConfig(Options):
    mass: float = option(0.9, gt=0, le=1)        # attribution mass a task's neuron set must hold
    core_mass: float = option(0.7, gt=0, le=1)   # mass of the core sets whose overlap is rare_common_overlap
    top_k: int = option(0, ge=0)                 # ablate each task's top-k neurons; 0: its whole mass set
    check_neurons: int = option(8, ge=1)         # per task: top neurons and as many random ones, one at a time
    chunk_tokens: int = option(16384, ge=1)   # token vectors per block read from the cache (bounds memory)
    seed: int = option(0, ge=0)


class TaskAllocationResult(Result):
    @property
    def tasks(self) -> list[str]:
        return list(self.scalars["tasks"])

    def neuron_set(self, task: str) -> np.ndarray:
        """[layer, neuron] bool: the task's neurons."""
        return self.arrays["neuron_set"][self.tasks.index(task)]


def task_roles(mixture, task_names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(rare, common): the least and most frequent tasks, or (None, None) without two distinct frequencies."""
    if mixture is None or len(task_names) < 2:
        return None, None
    freq = {t.name: t.frequency for t in mixture.tasks if t.name in task_names}
    if len(set(freq.values())) < 2:
        return None, None
    return min(freq, key=freq.get), max(freq, key=freq.get)


def mass_set(a: np.ndarray, mass: float) -> np.ndarray:
    """Bool mask of the fewest largest entries of ``a`` (>= 0) holding ``mass`` of its sum (empty if all zero)."""
    total = a.sum()
    out = np.zeros(a.shape, dtype=bool)
    if total <= 0:
        return out
    order = np.argsort(-a, kind="stable")
    k = int(np.searchsorted(np.cumsum(a[order]), mass * total * (1 - 1e-12)) + 1)
    out[order[:k]] = True
    return out


def jaccard(masks: np.ndarray) -> np.ndarray:
    """[task, task] Jaccard index of [task, unit] bool masks (1 on the diagonal; 0 for two empty sets)."""
    m = masks.astype(np.float64)
    inter = m @ m.T
    union = m.sum(1)[:, None] + m.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


class TaskAllocation(Analyzer):
    name = "task-allocation"
    Config = TaskAllocationConfig
    Result = TaskAllocationResult
    requires = "runs whose manifest has a task mixture with tasks (it allocates neurons to tasks)"
    question = ("Which MLP neurons does each task use, do tasks share or compete for them, and does ablating a "
                "task's neurons confirm it?")

    def needs(self, ref) -> Needs:
        return Needs(grad_hooks=mlp_hooks(ref.n_layers))

    def select(self, refs: list) -> list:
        """Runs with tasks in their mixture (a token-file series has no task labels to allocate)."""
        return [r for r in refs if r.mixture_spec is not None and r.mixture_spec.tasks]

    def run(self, unit: Unit, ctx) -> TaskAllocationResult:
        (ref,) = unit.refs
        prompts = ctx.prompts(ref)
        model = ctx.model(ref)
        d_mlp = model.cfg.d_mlp
        tasks = list(prompts.task_names)
        hooks = list(mlp_hooks(ref.n_layers))
        attr, mean_act = self._attribution(ctx, ref, prompts, hooks, len(tasks))   # [task, layer, neuron]
        flat = attr.reshape(len(tasks), -1)
        sets = np.stack([mass_set(a, self.config.mass) for a in flat])              # [task, unit]
        core = np.stack([mass_set(a, self.config.core_mass) for a in flat])
        loss, acc = task_losses(model, prompts, {}, mean_act)
        damage = np.zeros((len(tasks), len(tasks)))
        for i in range(len(tasks)):
            k = self.config.top_k or int(sets[i].sum())
            chosen = np.argsort(-flat[i], kind="stable")[:k] if k else np.array([], dtype=int)
            ablated, _ = task_losses(model, prompts, _by_layer(chosen, d_mlp), mean_act)
            damage[i] = ablated - loss
        rank_corr = self._rank_check(model, prompts, flat, mean_act, loss, d_mlp)

        result = self.new_result(unit)
        result.add("attribution", attr, ("task", "layer", "neuron"))
        result.add("neuron_set", sets.reshape(attr.shape), ("task", "layer", "neuron"))
        jac, core_jac, cos = jaccard(sets), jaccard(core), cosine_matrix(flat)
        result.add("jaccard", jac, ("task", "task_other"))
        result.add("core_jaccard", core_jac, ("task", "task_other"))
        result.add("cosine", cos, ("task", "task_other"))
        result.add("ablation_damage", damage, ("task_ablated", "task_measured"))
        result.add("loss", loss, ("task",))
        result.add("accuracy", acc, ("task",))
        share = sets.sum(1) / sets.shape[1]
        s = result.scalars
        s.update(tasks=tasks, n_units=int(sets.shape[1]), neuron_share=dict(zip(tasks, share.tolist())),
                 task_accuracy=dict(zip(tasks, acc.tolist())), ablation_rank_corr=dict(zip(tasks, rank_corr)))
        rare, common = task_roles(ref.mixture_spec, prompts.task_names)
        if rare is not None:
            r, c = tasks.index(rare), tasks.index(common)
            s.update(rare_task=rare, common_task=common, rare_task_accuracy=float(acc[r]),
                     common_task_accuracy=float(acc[c]), rare_task_neuron_share=float(share[r]),
                     common_task_neuron_share=float(share[c]),
                     rare_common_overlap=float(core_jac[r, c]), rare_common_overlap_90=float(jac[r, c]),
                     rare_common_cosine=float(cos[r, c]),
                     rare_core_in_common_core=float((core[r] & core[c]).sum() / max(core[r].sum(), 1)))
        return result

    def _attribution(self, ctx, ref, prompts: PromptSet, hooks: list[str], n_tasks: int):
        """Streams cached activations and gradients: per-task attribution sums and background mean activations."""
        task_id = prompts.task_id
        bg = task_id < 0 if (task_id < 0).any() else np.ones(len(task_id), dtype=bool)
        counts = np.bincount(task_id[task_id >= 0], minlength=n_tasks).astype(np.float64)
        attr, means = [], []
        for hook in hooks:
            acts, grads = ctx.acts(ref, hook), ctx.acts(ref, hook, grad=True)
            total = np.zeros((n_tasks, acts.shape[-1]))
            bg_sum = np.zeros(acts.shape[1:])
            start = 0
            rows = acts.rows_for(self.config.chunk_tokens)
            for a, g in zip(acts.blocks(rows), grads.blocks(rows)):
                ids = task_id[start:start + len(a)]
                per_prompt = np.abs((a.astype(np.float64) * g).sum(1))               # [prompt, neuron]
                keep = ids >= 0
                np.add.at(total, ids[keep], per_prompt[keep])
                bg_sum += a[bg[start:start + len(a)]].astype(np.float64).sum(0)
                start += len(a)
            attr.append(total / np.maximum(counts, 1)[:, None])
            means.append(bg_sum / bg.sum())                                           # [pos, neuron]
        return np.stack(attr, axis=1), means

    def _rank_check(self, model, prompts, flat, mean_act, clean, d_mlp) -> list[float]:
        rng = np.random.default_rng(self.config.seed)
        out = []
        for t in range(flat.shape[0]):
            top = np.argsort(-flat[t], kind="stable")[:self.config.check_neurons]
            rest = np.setdiff1d(np.arange(flat.shape[1]), top)
            pick = np.concatenate([top, rng.choice(rest, min(len(rest), len(top)), replace=False)])
            part = prompts.subset(prompts.task_id == t)
            if not len(part):
                out.append(0.0)
                continue
            ablated, _ = ablation_losses(model, part, [_by_layer(np.array([u]), d_mlp) for u in pick], mean_act)
            out.append(spearman(flat[t, pick], ablated - clean[t]))
        return out


def _by_layer(units: np.ndarray, d_mlp: int) -> dict[int, np.ndarray]:
    out: dict[int, list[int]] = {}
    for u in units.tolist():
        out.setdefault(u // d_mlp, []).append(u % d_mlp)
    return {l: np.asarray(v) for l, v in out.items()}


def task_losses(model, prompts: PromptSet, ablate: dict[int, np.ndarray], mean_act: list[np.ndarray],
                batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-task mean loss and label accuracy with the given neurons mean-ablated: ([task], [task])."""
    n = len(prompts.task_names)
    loss, acc = np.full(n, np.nan), np.full(n, np.nan)
    for t in range(n):
        part = prompts.subset(prompts.task_id == t)
        if len(part):
            (loss[t],), (acc[t],) = ablation_losses(model, part, [ablate], mean_act, batch_size)
    return loss, acc


def ablation_losses(model, prompts: PromptSet, variants: list[dict[int, np.ndarray]], mean_act: list[np.ndarray],
                    batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and label accuracy over ``prompts`` under each ablation variant: ([variant], [variant]).

    All variants run in one batch (each prompt repeated once per variant, each copy with its own neurons replaced),
    because on small models a forward call's fixed cost dominates: 16 single-neuron ablations cost one call."""
    import torch

    from interp.maths.losses import masked_next_token_loss

    device = next(model.parameters()).device
    n_var, d_mlp = len(variants), model.cfg.d_mlp
    hooks = []
    for layer in sorted({l for v in variants for l in v}):
        mask = torch.zeros(n_var, d_mlp, dtype=torch.bool, device=device)            # [variant, neuron]
        for i, v in enumerate(variants):
            if layer in v and len(v[layer]):
                mask[i, torch.as_tensor(v[layer], device=device)] = True
        mean = torch.as_tensor(mean_act[layer], dtype=torch.float32, device=device)  # [pos, neuron]

        def patch(act, hook, mask=mask, mean=mean):
            b, pos, _ = act.shape
            act = act.view(n_var, b // n_var, pos, -1)
            return torch.where(mask[:, None, None, :], mean[None, None, :pos].to(act.dtype), act).view(b, pos, -1)

        hooks.append((act_name("post", layer), patch))
    per_chunk = max(1, batch_size // n_var)
    loss_sum, correct = np.zeros(n_var), np.zeros(n_var)
    with torch.inference_mode():
        for s in range(0, len(prompts), per_chunk):
            toks = torch.as_tensor(prompts.tokens[s:s + per_chunk], device=device)
            mask = torch.as_tensor(prompts.loss_mask[s:s + per_chunk], device=device)
            c = len(toks)
            logits = model.run_with_hooks(toks.repeat(n_var, 1), fwd_hooks=hooks)
            nll = masked_next_token_loss(logits, toks.repeat(n_var, 1), mask.repeat(n_var, 1), reduction="none")
            loss_sum += nll.double().view(n_var, c).sum(1).cpu().numpy()
            hit = logits[:, LABEL_POS].argmax(-1) == toks.repeat(n_var, 1)[:, LABEL_POS + 1]
            correct += hit.view(n_var, c).sum(1).cpu().numpy()
    return loss_sum / len(prompts), correct / len(prompts)
