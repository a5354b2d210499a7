"""``universal-neurons``: which MLP neurons recur in every seed (Gurnee et al., arXiv 2401.12181).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.

The correlations are computed in ``interp.analyzers.universal_neurons.cross_seed``, one block per (seed
pair, layer pair).

Memory is independent of the number of tokens and bounded by ``memory_gb``: the blocks' float64 sums (d_mlp^2 x 8
bytes each) are taken a few at a time, each group a fresh pass over the cached activations (GPT-2 small at 3 seeds
has 1,296 blocks of 75 MB: 25 passes at 4 GB). With ``shard=true`` each (seed pair, layer pair) is its own task: on
a Dask cluster the shards of one unit run on many workers at once, each reading only its two layers from the
shared cache; the arrays are identical to the serial path's, bit for bit (the same block computations on the same
chunks).

Numerics: each input is shifted by its first block's means and float32 blocks of 1,024 rows are multiplied into
float64 sums (``interp.maths.stats``), so neurons with a large mean against their spread stay accurate
(raw-moment sums lose every digit there). The rotated baselines come from those sums and each input's Gram matrix
(``interp.analyzers.universal_neurons.cross_seed``), in float64. A dead (constant) neuron has correlation 0 with
everything (defined, not NaN), so it is never universal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from interp.activations.positions import PositionFilter
from interp.analyzers.base import Analyzer, Scope, Unit
from interp.analyzers.universal_neurons import cross_seed
from interp.checkpoints.hooks import act_name, mlp_hooks
from interp.config import Options, option
from interp.results import Result
from interp.runner.context import Needs


@dataclass(frozen=True)
class UniversalNeuronsConfig(Options):
    threshold: float = option(0.5, ge=0, le=2)   # excess correlation above which a neuron is universal
    chunk_tokens: int = option(16384, ge=1)      # token vectors per chunk read from the cache (bounds memory)
    seed: int = option(0, ge=0)                  # of the random rotations
    matching: bool = True                        # also the one-to-one (Hungarian) matching
    memory_gb: float = option(4.0, gt=0)         # for the float64 cross sums: bounds the blocks taken per pass
    shard: bool = False                          # one task per (seed pair, layer pair): fans out on a Dask cluster
    # hold the seeds' models together and stream every batch through each: nothing per token is written to disk
    # (false: cache every seed's activations first and read them back, as sharding must)
    lockstep: bool = True
    # over text, a window's first position and special tokens are left out, as Gurnee et al. filtered them: their
    # activations are outliers shared by every seed, which inflate correlations
    keep_first_position: bool = False
    keep_special_tokens: bool = False


class UniversalNeuronsResult(Result):
    TIES = ("best_match", "universal")   # an argmax over correlations, a threshold on the excess
    @property
    def universal(self) -> np.ndarray:
        """[seed, layer, neuron] bool."""
        return self.arrays["universal"]


def excess(max_corr: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean_corr, mean_baseline, excess_corr), each [seed, unit]: means over the other seeds."""
    mean_corr, mean_base = np.nanmean(max_corr, axis=1), np.nanmean(baseline, axis=1)
    return mean_corr, mean_base, mean_corr - mean_base


class UniversalNeurons(Analyzer):
    name = "universal-neurons"
    Config = UniversalNeuronsConfig
    Result = UniversalNeuronsResult
    version = 3   # text's first positions and special tokens left out
    scope = Scope.SEEDS
    # the universal-vs-other tables join neuron-stats' per-neuron statistics and neuron-roles' roles
    uses = ("neuron-stats", "neuron-roles")
    requires = "at least two seeds of a run at the same step (it correlates neurons across seeds)"
    question = "Which MLP neurons recur in every seed, more than a random rotation of the same activations would?"

    @property
    def streams(self) -> bool:
        """Whether its units run the forward passes themselves (lockstep), feeding taps, rather than read a cache."""
        return self.config.lockstep and not self.config.shard

    def needs(self, ref) -> Needs:
        return Needs() if self.streams else Needs(hooks=mlp_hooks(ref.n_layers))

    def own_work(self, refs, tokens: int, params: int, tapped: bool = False) -> tuple[float, int]:
        """A lockstep pass per group of blocks whose float64 cross sums fit ``memory_gb``, every seed's model held."""
        if not self.streams:
            return 0.0, 0
        n, model = len(refs), refs[0].model
        layers, d_mlp = int(model.get("n_layers", 0)), int(model.get("d_mlp") or 4 * int(model.get("d_model", 0)))
        sums = n * (n - 1) // 2 * layers * layers * 8 * d_mlp * d_mlp          # every block's float64 cross sums
        budget = int(self.config.memory_gb * 2**30)
        passes = max(1, -(-sums // budget))
        grams = 2 * n * layers * 8 * d_mlp * d_mlp                             # and each input's rotation
        # a batch's MLP activations of every seed and layer, float32, held raw and position-masked, and a tap's
        # pre-activations beside them
        batch = 3 * n * layers * 8192 * d_mlp * 4
        counted = n * 4 * params + min(sums, budget) + grams + batch
        # x 1.6: what the process held beyond the tensors counted (allocator caches, transient products): 11.7 GB
        # measured for 3 seeds of a 70m-shaped model (6 layers x 2,048 neurons) against 7.3 GB counted
        return passes * n * 2.0 * params * tokens, int(1.6 * counted)

    def run(self, unit: Unit, ctx) -> UniversalNeuronsResult:
        if self.streams:
            return self._run_lockstep(unit, ctx)
        refs = sorted(unit.refs, key=lambda r: r.seed)
        n_layers, n = refs[0].n_layers, len(refs)
        paths = {(s, layer): str(ctx.acts(r, act_name("post", layer)).path) for s, r in enumerate(refs)
                 for layer in range(n_layers)}
        d = ctx.acts(refs[0], act_name("post", 0)).shape[-1]
        c = self.config
        keep = PositionFilter.of(ctx.prompts(refs[0]), c.keep_first_position, c.keep_special_tokens)
        if c.shard:
            job = partial(shard_job, paths, d=d, seed=c.seed, tokens=c.chunk_tokens, device=ctx.device,
                          matching=c.matching, keep=keep)
            parts = ctx.map(job, cross_seed.shards(n, n_layers))
            out = cross_seed.reduce([b for part in parts for b in part], n, n_layers, d, c.matching)
            passes = len(parts)
        else:
            out = cross_seed.cross_seed_correlations(lambda keys: stream_chunks(paths, keys, c.chunk_tokens, keep), n,
                                                     n_layers, d, c.seed, ctx.device, c.matching,
                                                     c.memory_gb * 2**30)
            passes = len(cross_seed.passes(cross_seed.all_blocks(n, n_layers), d, c.memory_gb * 2**30))
        result = self._result(unit, refs, out, n_layers, d)
        result.scalars["passes"] = passes   # reads of the cached activations (serial) or shards (sharded)
        return result

    def _run_lockstep(self, unit: Unit, ctx) -> UniversalNeuronsResult:
        """Every seed's model held at once (or, when they do not fit in half the free memory, every pair in turn),
        each batch of prompts streamed through them and consumed by the blocks' sums: the same block computations
        as the cached path on the same tokens, with nothing written to disk. Taps (neuron-stats of these
        checkpoints) are fed from the first pass."""
        from interp.activations.lockstep import ModelGroup

        refs = sorted(unit.refs, key=lambda r: r.seed)
        n, n_layers, c = len(refs), refs[0].n_layers, self.config
        prompts = ctx.prompts(refs[0])
        keep = PositionFilter.of(prompts, c.keep_first_position, c.keep_special_tokens)
        size = max(2 * (r.size or 0) for r in refs)   # a float16 file doubles in float32
        together = ModelGroup.fits(size, n, ctx.device)
        groups = [list(range(n))] if together else [[a, b] for a in range(n) for b in range(a + 1, n)]
        results, passes, d = [], 0, None
        for members in groups:
            group = ModelGroup([refs[s] for s in members], ctx.device, ctx.settings.allow_pickle,
                               ctx.settings.cache.nonfinite)
            try:
                models = {s: group[refs[s].id] for s in members}
                d = models[members[0]].cfg.d_mlp
                feed = LockstepChunks(models, prompts, ctx.batch_rows(prompts), keep, ctx.device,
                                      {s: ctx.claim_taps(refs[s], models[s], prompts) for s in members})
                blocks = [k for k in cross_seed.all_blocks(n, n_layers) if k.a in members and k.b in members]
                for group_blocks in cross_seed.passes(blocks, d, c.memory_gb * 2**30):
                    results += cross_seed.run_blocks(group_blocks, feed, d, c.seed, ctx.device, c.matching)
                    passes += 1
            finally:
                group.close()
        out = cross_seed.reduce(results, n, n_layers, d, c.matching)
        result = self._result(unit, refs, out, n_layers, d)
        result.scalars.update(passes=passes, models_held=len(groups[0]))   # forward passes over the tokens
        return result

    def _result(self, unit: Unit, refs, out: dict, n_layers: int, d_mlp: int) -> UniversalNeuronsResult:
        mean_corr, mean_base, exc = excess(out["max_corr"], out["baseline_max"])
        universal = exc > self.config.threshold
        n = len(refs)
        shape4 = (n, n, n_layers, d_mlp)
        dims4 = ("seed", "other_seed", "layer", "neuron")
        result = self.new_result(unit)
        for name in ("max_corr", "baseline_max", "best_match", "matched_corr"):
            if name in out:
                result.add(name, out[name].reshape(shape4), dims4)
        for name, arr in (("mean_corr", mean_corr), ("mean_baseline", mean_base), ("excess_corr", exc),
                          ("universal", universal)):
            result.add(name, arr.reshape(n, n_layers, d_mlp), ("seed", "layer", "neuron"))
        per_layer = universal.reshape(n, n_layers, d_mlp).mean(axis=(0, 2))
        result.scalars.update(seeds=[r.seed for r in refs], universal_fraction=float(universal.mean()),
                              universal_fraction_per_layer=per_layer.tolist(), mean_excess_corr=float(exc.mean()),
                              mean_max_corr=float(mean_corr.mean()), mean_baseline=float(mean_base.mean()))
        return result


class LockstepChunks:
    """The ``cross_seed.Chunks`` of a lockstep pass: for the (seed, layer) inputs a pass needs, each batch of prompts
    run through those seeds' models, the MLP activations masked to the positions that count. The first pass also
    feeds every tap (``taps``: per seed, consumers of other hooks of the same forward pass)."""

    def __init__(self, models: dict[int, object], prompts, rows: int, keep: PositionFilter | None, device: str,
                 taps: dict[int, list]):
        self.models, self.prompts, self.rows, self.keep, self.device = models, prompts, rows, keep, device
        self.taps = {s: ts for s, ts in taps.items() if ts}

    def __call__(self, keys: set[tuple[int, int]]) -> Iterator[dict[tuple[int, int], object]]:
        from interp.activations.lockstep import masked, stream

        taps, self.taps = self.taps, {}          # fed once, by the first pass
        hooks = {s: {act_name("post", layer) for ss, layer in keys if ss == s} for s in self.models}
        for s, ts in taps.items():
            hooks[s] |= set().union(*(t.hooks for t in ts))
        for part, acts in stream(self.models, self.prompts, self.rows, hooks, self.device):
            for s, ts in taps.items():
                for t in ts:
                    t.update(part, {h: acts[(s, h)] for h in t.hooks})
            m = self.keep.mask(part.start, part.stop) if self.keep is not None else None
            yield {(s, layer): masked(acts[(s, act_name("post", layer))], m) for s, layer in keys}


def stream_chunks(paths: dict[tuple[int, int], str], keys: set[tuple[int, int]], tokens: int,
                  keep: PositionFilter | None = None) -> Iterator[dict[tuple[int, int], np.ndarray]]:
    """Per chunk of about ``tokens`` tokens, {(seed, layer): [token, neuron]} for the cached activations ``keys``
    need, only the positions ``keep`` counts; every array is read with the same prompts per chunk, so their rows
    stay aligned."""
    from interp.activations.store import HookArray

    arrays = {k: HookArray(paths[k]) for k in sorted(keys)}
    rows = next(iter(arrays.values())).rows_for(tokens)
    readers = {k: a.blocks(rows) for k, a in arrays.items()}
    start = 0
    for block in zip(*readers.values()):
        m = keep.mask(start, start + len(block[0])).reshape(-1) if keep is not None else None
        start += len(block[0])
        yield {k: (b.reshape(-1, b.shape[-1]) if m is None else b.reshape(-1, b.shape[-1])[m])
               for k, b in zip(readers, block)}


def shard_job(paths: dict[tuple[int, int], str], blocks: list, d: int, seed: int, tokens: int, device: str,
              matching: bool, keep: PositionFilter | None = None) -> list:
    """One shard (a seed pair at a layer pair): its blocks over the two layers it reads. Picklable: on a Dask
    cluster it runs on any worker that sees the cache."""
    return cross_seed.run_blocks(blocks, lambda keys: stream_chunks(paths, keys, tokens, keep), d, seed, device,
                                 matching)
