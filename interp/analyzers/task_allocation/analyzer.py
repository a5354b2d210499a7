"""``task-allocation``: which MLP neurons each task uses, and how tasks compete for them (Huang et al., arXiv
2605.29548).

The method, the choices that are ours and the caveats: ``method.md`` beside this module. The tasks come from either
source (a toy run's mixture, a user's task file: ``interp.prompts.task_set``); the background that ablated neurons
are set to comes from the evaluation prompts when the run has them (the mixture's background, or text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.analyzers.task_allocation.ablation import ablation_losses, by_layer, task_losses
from interp.checkpoints.hooks import mlp_hooks
from interp.config import Options, option
from interp.maths.nulls import expected_jaccard_matrix, stratified_sample
from interp.maths.stats import cosine_matrix
from interp.results import Result
from interp.runner.context import Needs

if TYPE_CHECKING:
    from interp.prompts.prompt_set import PromptSet


@dataclass(frozen=True)
class TaskAllocationConfig(Options):
    mass: float = option(0.9, gt=0, le=1)        # attribution mass a task's neuron set must hold
    core_mass: float = option(0.7, gt=0, le=1)   # mass of the core sets whose overlap is rare_common_overlap
    top_k: int = option(0, ge=0)                 # ablate each task's top-k neurons; 0: its whole mass set
    # per task, single-neuron ablations of a stratified sample of this many neurons (all, when there are fewer) for
    # the rank check of attribution against damage
    check_neurons: int = option(32, ge=4)
    controls: int = option(4, ge=0)              # random neuron sets per task, of its set's size, for the damage null
    chunk_tokens: int = option(16384, ge=1)   # token vectors per block read from the cache (bounds memory)
    seed: int = option(0, ge=0)
    rare_task: str = ""                          # the rare and common tasks by name (default: by frequency)
    common_task: str = ""


class TaskAllocationResult(Result):
    TIES = ("neuron_set", "core_set")   # a neuron at a mass threshold can change sets with the last float digits

    @property
    def tasks(self) -> list[str]:
        return list(self.scalars["tasks"])

    def neuron_set(self, task: str) -> np.ndarray:
        """[layer, neuron] bool: the task's neurons."""
        return self.arrays["neuron_set"][self.tasks.index(task)]


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
    version = 2   # tasks from any source, answer-level accuracy, null overlaps, stratified rank check, damage null
    inputs = ("tasks",)
    extra_inputs = ("prompts",)   # background activations for mean-ablation, when the run has them
    requires = "tasks: a run whose manifest has a task mixture, or a task file (--tasks)"
    question = ("Which MLP neurons does each task use, do tasks share or compete for them more than sets of the same "
                "size would by chance, and does ablating a task's neurons confirm it?")

    def needs(self, ref) -> list[Needs]:
        hooks = mlp_hooks(ref.n_layers)
        return [Needs(grad_hooks=hooks, on="tasks"), Needs(hooks=hooks, on="prompts")]

    def run(self, unit: Unit, ctx) -> TaskAllocationResult:
        (ref,) = unit.refs
        tasks = ctx.tasks(ref)
        prompts, model = tasks.prompts, ctx.model(ref)
        d_mlp, names = model.cfg.d_mlp, list(tasks.names)
        hooks = list(mlp_hooks(ref.n_layers))
        attr = self._attribution(ctx, ref, prompts, hooks, len(names))                # [task, layer, neuron]
        mean_act = self._ablation_values(ctx, ref, prompts, hooks)
        flat = attr.reshape(len(names), -1)
        sets = np.stack([mass_set(a, self.config.mass) for a in flat])              # [task, unit]
        core = np.stack([mass_set(a, self.config.core_mass) for a in flat])
        loss, acc = task_losses(model, prompts, {}, mean_act)
        damage, control = self._damage(model, prompts, flat, sets, mean_act, loss, d_mlp)
        rank_corr, n_checked = self._rank_check(model, prompts, flat, mean_act, loss, d_mlp)

        result = self.new_result(unit)
        n_units = sets.shape[1]
        jac, core_jac, cos = jaccard(sets), jaccard(core), cosine_matrix(flat)
        jac_null = expected_jaccard_matrix(n_units, sets.sum(1))
        core_null = expected_jaccard_matrix(n_units, core.sum(1))
        for key, arr, dims in (("attribution", attr, ("task", "layer", "neuron")),
                               ("neuron_set", sets.reshape(attr.shape), ("task", "layer", "neuron")),
                               ("core_set", core.reshape(attr.shape), ("task", "layer", "neuron")),
                               ("jaccard", jac, ("task", "task_other")),
                               ("jaccard_null", jac_null, ("task", "task_other")),
                               ("core_jaccard", core_jac, ("task", "task_other")),
                               ("core_jaccard_null", core_null, ("task", "task_other")),
                               ("cosine", cos, ("task", "task_other")),
                               ("ablation_damage", damage, ("task_ablated", "task_measured")),
                               ("ablation_damage_random", control, ("task_ablated", "task_measured")),
                               ("loss", loss, ("task",)), ("accuracy", acc, ("task",))):
            result.add(key, arr, dims)
        share = sets.sum(1) / n_units
        s = result.scalars
        s.update(tasks=names, n_units=int(n_units), neuron_share=dict(zip(names, share.tolist())),
                 task_accuracy=dict(zip(names, acc.tolist())), ablation_rank_corr=dict(zip(names, rank_corr)),
                 ablation_rank_neurons=n_checked, task_source=tasks.source)
        rare, common = tasks.roles(self.config.rare_task or None, self.config.common_task or None)
        if rare is not None:
            r, c = names.index(rare), names.index(common)
            s.update(rare_task=rare, common_task=common, rare_task_accuracy=float(acc[r]),
                     common_task_accuracy=float(acc[c]), rare_task_neuron_share=float(share[r]),
                     common_task_neuron_share=float(share[c]),
                     rare_common_overlap=float(core_jac[r, c]), rare_common_overlap_null=float(core_null[r, c]),
                     rare_common_overlap_excess=float(core_jac[r, c] - core_null[r, c]),
                     rare_common_overlap_90=float(jac[r, c]), rare_common_overlap_90_null=float(jac_null[r, c]),
                     rare_common_cosine=float(cos[r, c]),
                     rare_core_in_common_core=float((core[r] & core[c]).sum() / max(core[r].sum(), 1)))
        return result

    def _attribution(self, ctx, ref, prompts: PromptSet, hooks: list[str], n_tasks: int) -> np.ndarray:
        """[task, layer, neuron]: per task, the mean over its prompts of |sum over positions of act x grad|, streamed
        from the cached activations and gradients of the task prompts."""
        task_id = prompts.task_id
        counts = np.bincount(task_id, minlength=n_tasks).astype(np.float64)
        attr = []
        for hook in hooks:
            acts, grads = ctx.acts(ref, hook, on="tasks"), ctx.acts(ref, hook, grad=True, on="tasks")
            total = np.zeros((n_tasks, acts.shape[-1]))
            start = 0
            rows = acts.rows_for(self.config.chunk_tokens)
            for a, g in zip(acts.blocks(rows), grads.blocks(rows)):
                per_prompt = np.abs((a.astype(np.float64) * g).sum(1))               # [prompt, neuron]
                np.add.at(total, task_id[start:start + len(a)], per_prompt)
                start += len(a)
            attr.append(total / np.maximum(counts, 1)[:, None])
        return np.stack(attr, axis=1)

    def _ablation_values(self, ctx, ref, tasks: PromptSet, hooks: list[str]) -> list[np.ndarray]:
        """Per layer, [pos, neuron]: what an ablated neuron is set to at each position of the task prompts, its mean
        activation on background text (the evaluation prompts' rows without a task). Per position when the
        background has the task prompts' positions (a toy mixture), else one mean over the background's counted
        positions (``statistics_mask``: not a window's first position, not special tokens); over the task prompts
        themselves when the run has no background."""
        width = tasks.tokens.shape[1]
        on = "prompts" if "prompts" in ctx.available(ref) else "tasks"
        src = ctx.prompt_set(ref, on)
        bg = src.task_id < 0 if (src.task_id < 0).any() else np.ones(len(src), dtype=bool)
        per_position = src.tokens.shape[1] == width
        out = []
        for hook in hooks:
            acts = ctx.acts(ref, hook, on=on)
            total, count, start = None, 0.0, 0
            for a in acts.blocks(acts.rows_for(self.config.chunk_tokens)):
                rows = slice(start, start + len(a))
                keep = bg[rows]
                block = a[keep].astype(np.float64)                                   # [prompt, pos, neuron]
                if per_position:
                    part, n = block.sum(0), float(keep.sum())
                else:
                    m = src.statistics_mask(np.asarray(src.tokens[rows])[keep])
                    part, n = block[m].sum(0), float(m.sum())
                total = part if total is None else total + part
                count += n
                start += len(a)
            mean = total / max(count, 1.0)
            out.append(mean if per_position else np.broadcast_to(mean, (width, mean.shape[-1])).copy())
        return out

    def _damage(self, model, prompts, flat, sets, mean_act, loss, d_mlp) -> tuple[np.ndarray, np.ndarray]:
        """([ablated, measured] loss increase when a task's set, or its top_k, is mean-ablated; and the mean increase
        over ``controls`` random sets of the same size: the null the damage is read against). Every ablation of a
        measured task's prompts runs as one batch of variants."""
        rng = np.random.default_rng([self.config.seed, 1])
        n, c = len(flat), self.config.controls
        variants, sizes = [], []
        for i in range(n):
            k = self.config.top_k or int(sets[i].sum())
            sizes.append(k)
            variants.append(by_layer(np.argsort(-flat[i], kind="stable")[:k], d_mlp))
            variants += [by_layer(rng.choice(flat.shape[1], k, replace=False), d_mlp) for _ in range(c if k else 0)]
        damage, control = np.full((n, n), np.nan), np.full((n, n), np.nan)
        for j in range(n):
            part = prompts.subset(prompts.task_id == j)
            if not len(part):
                continue
            ablated, _ = ablation_losses(model, part, variants, mean_act)
            at = 0
            for i in range(n):
                damage[i, j] = ablated[at] - loss[j]
                drawn = c if sizes[i] else 0
                if drawn:
                    control[i, j] = float(np.mean(ablated[at + 1:at + 1 + drawn])) - loss[j]
                at += 1 + drawn
        return damage, control

    def _rank_check(self, model, prompts, flat, mean_act, clean, d_mlp) -> tuple[list[float], int]:
        """Per task, the Spearman correlation between attribution and the loss increase of single-neuron ablations,
        over a sample stratified along the attribution (every neuron when there are at most ``check_neurons``)."""
        rng = np.random.default_rng(self.config.seed)
        out, n_checked = [], 0
        for t in range(flat.shape[0]):
            pick = stratified_sample(flat[t], self.config.check_neurons, rng)
            n_checked = len(pick)
            part = prompts.subset(prompts.task_id == t)
            if not len(part):
                out.append(0.0)
                continue
            ablated, _ = ablation_losses(model, part, [by_layer(np.array([u]), d_mlp) for u in pick], mean_act)
            out.append(spearman(flat[t, pick], ablated - clean[t]))
        return out, n_checked
