"""What a run will cost before it runs (``interp plan``, ``interp analyze --dry-run``): per analyzer, its units, the
floating-point work of the forward and backward passes it causes, the bytes it writes to the activation cache, and
the memory it holds at its peak; a ``--disk-budget`` refuses a run whose cache would not fit.

The counts are exact where interp knows them (the tokens of every prompt set, the hooks each analyzer caches, the
models a lockstep pass holds) and rules of thumb where the analyzer's own loops decide (2 x parameters FLOPs per
token forward, 3x that with a backward pass; the SGLD chains' steps). Activation bytes are the cache's only
per-token output: results are per neuron, not per token.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interp.checkpoints.manifest import CheckpointRef
    from interp.runner.context import Context
    from interp.runner.plan import Plan

ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
# bytes of an activation file beyond its numbers (HDF5 superblock, chunk index, interp's provenance attributes):
# measured 9,656 on every cache file of a tiny series, where it is most of the file
FILE_OVERHEAD = 9656


@dataclass
class Estimate:
    analyzer: str
    units: int = 0
    flops: float = 0.0
    disk_bytes: int = 0
    peak_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def n_params(model: dict[str, Any]) -> int:
    """Parameters of a transformer from its HookedTransformerConfig keyword arguments (biases and norms aside)."""
    d, layers = int(model.get("d_model", 0)), int(model.get("n_layers", 0))
    d_mlp = int(model.get("d_mlp") or 4 * d)
    heads, d_head = int(model.get("n_heads", 1)), int(model.get("d_head") or d // max(1, int(model.get("n_heads", 1))))
    vocab = int(model.get("d_vocab", 0))
    return 2 * vocab * d + layers * (4 * d * heads * d_head + 2 * d * d_mlp)


def hook_width(hook: str, model: dict[str, Any]) -> int:
    """Numbers per token position a hook holds."""
    if ".mlp." in hook:
        return int(model.get("d_mlp") or 4 * int(model.get("d_model", 0)))
    if ".attn.hook_" in hook and hook.rsplit("_", 1)[-1] in ("q", "k", "v", "z"):
        return int(model.get("n_heads", 1)) * int(model.get("d_head") or 0)
    return int(model.get("d_model", 0))


def _tokens(ctx: Context, ref: CheckpointRef, on: str) -> int:
    prompts = ctx.prompt_set(ref, on)
    return int(prompts.tokens.shape[0] * prompts.tokens.shape[1])


def estimate(plan: Plan, ctx: Context, storage_dtype: str) -> dict[str, Estimate]:
    """Per analyzer (and ``TOTAL``, where cache files two analyzers share count once): the plan's costs."""
    out: dict[str, Estimate] = {}
    union: dict[tuple[str, str], set[tuple[str, bool]]] = defaultdict(set)   # (ref, input) -> {(hook, grad)}
    size = ITEMSIZE[storage_dtype]
    for stage in plan.stages:
        for job in stage:
            for a in job.analyzers + job.tapped:
                e = out.setdefault(a.name, Estimate(a.name))
                if a in job.tapped:   # one unit per checkpoint of the group, fed by the group's pass
                    e.units += len(job.refs)
                    for r in job.refs:
                        _cost(e, a, job, (r,), ctx, size, union, tapped=True)
                else:
                    e.units += 1
                    _cost(e, a, job, job.refs, ctx, size, union, tapped=False)
    total = Estimate("TOTAL", sum(e.units for e in out.values()), sum(e.flops for e in out.values()), 0,
                     max((e.peak_bytes for e in out.values()), default=0))
    refs = {r.id: r for stage in plan.stages for job in stage for r in job.refs}
    for (ref_id, on), hooks in union.items():
        ref = refs[ref_id]
        tokens = _tokens(ctx, ref, on)
        total.disk_bytes += sum(tokens * hook_width(h, ref.model) * (4 if grad else size) + FILE_OVERHEAD
                                for h, grad in hooks)
    out["TOTAL"] = total
    return out


def stage_peaks(plan: Plan, ctx: Context, storage_dtype: str) -> list[int]:
    """Per stage of ``plan``: the largest peak memory (bytes) any one of its jobs is estimated to hold (a job runs
    its analyzers one after another, so its peak is its largest analyzer's): how many jobs may run side by side."""
    size = ITEMSIZE[storage_dtype]
    out = []
    for stage in plan.stages:
        peak = 0
        for job in stage:
            for a in job.analyzers + job.tapped:
                e = Estimate(a.name)
                _cost(e, a, job, job.refs if a not in job.tapped else job.refs[:1], ctx, size, defaultdict(set),
                      tapped=a in job.tapped)
                peak = max(peak, e.peak_bytes)
        out.append(peak)
    return out


def _cost(e: Estimate, analyzer: Any, job: Any, refs: tuple, ctx: Context, size: int, union: dict,
          tapped: bool) -> None:
    """Add one unit's costs: its cache (hooks on each input, gradients float32), and its forward passes."""
    from interp.runner.run import _as_list

    have = ctx.available(refs[0])
    model = refs[0].model
    p = n_params(model)
    model_bytes = 4 * p
    for ref in refs:
        for needs in _as_list(analyzer.needs(ref)):
            if needs.on not in have or not (needs.hooks or needs.grad_hooks):
                continue
            tokens = _tokens(ctx, ref, needs.on)
            hooks = {(h, False) for h in needs.hooks + needs.grad_hooks} | {(h, True) for h in needs.grad_hooks}
            e.disk_bytes += sum(tokens * hook_width(h, ref.model) * (4 if g else size) + FILE_OVERHEAD
                                for h, g in hooks)
            e.flops += tokens * 2 * p * (3 if needs.grad_hooks else 1)
            union[(ref.id, needs.on)] |= hooks
    tokens = _tokens(ctx, refs[0], "prompts") if "prompts" in have else 0
    flops, peak = analyzer.own_work(refs, tokens, p, tapped)
    e.flops += flops
    e.peak_bytes = max(e.peak_bytes, peak, model_bytes + 4 * ctx.settings.cache.batch_tokens *
                       int(model.get("d_vocab", 0)))
