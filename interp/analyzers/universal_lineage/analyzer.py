"""``universal-lineage``: when the neurons universal at a run's last step became so, and whether the seeds agree on
when (Gurnee et al., arXiv 2401.12181, study final checkpoints only; a series can say when).

The method, the choices that are ours and the caveats: ``method.md`` beside this module; the arithmetic on the
correlations (settling steps, the bootstrap): ``lineage.py``.

One unit is a run's whole series. It reads what ``universal-neurons`` found at every step (``Unit.upstream``: the
universal set, each neuron's best partner in every other seed, the rotation baseline) and adds, per step t, one
lockstep pass over the same tokens through the seeds' models at t and at the last step T:

- each neuron's correlation with its *final* partner in every other seed (seed a at t against seed b at t);
- its correlation with itself at T (seed a at t against seed a at T);
- the correlation with its partner *at t*, per block of prompts, for a bootstrap interval on the universal fraction.

Memory: the 2 x seeds models of a step (or, when they do not fit in half the free memory, two at a time) plus
6 float64 sums per neuron pair and block, independent of the number of tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from interp.activations.positions import PositionFilter
from interp.analyzers.base import Analyzer, Scope, Unit
from interp.analyzers.universal_lineage import lineage as L
from interp.checkpoints.hooks import act_name
from interp.config import Options, option
from interp.errors import ResultError
from interp.results import Result, unit_id
from interp.runner.context import Needs

if TYPE_CHECKING:
    import torch

    from interp.checkpoints.manifest import CheckpointRef
    from interp.runner.context import Context

UPSTREAM = "universal-neurons"


@dataclass(frozen=True)
class UniversalLineageConfig(Options):
    # self-correlation with the last step at or above which a neuron is taken to be the one it ends as (ours)
    identity_min: float = option(0.9, gt=0, le=1)
    blocks: int = option(20, ge=2)          # prompt blocks the bootstrap resamples (contiguous rows)
    bootstrap: int = option(200, ge=10)     # bootstrap draws of those blocks
    confidence: float = option(0.95, gt=0, lt=1)
    seed: int = option(0, ge=0)             # of the bootstrap draws


class UniversalLineageResult(Result):
    TIES = ("lock_in_index", "identity_index", "universal_boot_*")   # thresholds on correlations

    @property
    def steps(self) -> list[int]:
        return [int(s) for s in self.arrays["steps"]]


class UniversalLineage(Analyzer):
    name = "universal-lineage"
    Config = UniversalLineageConfig
    Result = UniversalLineageResult
    scope = Scope.RUN
    reads = (UPSTREAM,)
    uses = ("neuron-roles",)   # was a universal neuron's final role there before it became universal?
    requires = "at least two seeds of a run at two or more steps they share"
    question = ("When did the neurons universal at the last step become universal, did their identity settle "
                "before or after, and do the seeds agree on when?")

    def needs(self, ref: CheckpointRef) -> Needs:
        return Needs()   # its own lockstep passes; nothing cached

    def own_work(self, refs, tokens: int, params: int, tapped: bool = False) -> tuple[float, int]:
        """Per step, every seed at that step and at the last (the last step alone once): 2n - 1 forward passes per
        earlier step; the pair sums: 6 float64 per neuron pair (n(n-1) x 2 + n pairs per neuron) and block."""
        steps, seeds = len({r.step for r in refs}), len({r.seed for r in refs})
        model = refs[0].model
        units = int(model.get("n_layers", 0)) * int(model.get("d_mlp") or 4 * int(model.get("d_model", 0)))
        pairs = seeds * (seeds - 1) * (1 + self.config.blocks) + seeds
        return (2 * seeds * (steps - 1) + seeds) * 2.0 * params * tokens, 2 * seeds * 4 * params + 48 * pairs * units

    def run(self, unit: Unit, ctx: Context) -> UniversalLineageResult:
        steps, seeds, grid = series_grid(unit.refs)
        upstream = upstream_per_step(unit, steps)
        ucfg, threshold = upstream[-1].config, float(upstream[-1].config["threshold"])
        n, (n_layers, d) = len(seeds), upstream[-1].arrays["universal"].shape[1:]
        flat = {k: np.stack([u.arrays[k].reshape(n, n, n_layers * d) for u in upstream])
                for k in ("best_match", "baseline_max", "max_corr")}                 # [step, seed, other, unit]
        flat["universal"] = np.stack([u.arrays["universal"].reshape(n, n_layers * d) for u in upstream])
        # a run with no universal neuron at any step has no lineage to follow: no pass is run (at the bundled series'
        # scale this halves the analyzer's cost), and the fraction's interval is left undrawn rather than guessed
        idle = not flat["universal"].any()
        corr = (self._nothing(len(steps), n, n_layers * d) if idle else
                self._correlations(grid, steps, seeds, flat, threshold, unit.refs[0], ucfg, ctx))
        excess_final = L.excess(corr["final"], flat["baseline_max"])                 # [step, seed, unit]
        universal_last = flat["universal"][-1]
        lock_in = L.settled_index(excess_final > threshold)                          # [seed, unit]
        identity = L.settled_index(corr["self"] >= self.config.identity_min)
        lock_in[~universal_last], identity[~universal_last] = -1, -1
        frac = flat["universal"].reshape(len(steps), n, n_layers, d).mean(axis=(1, 3))   # [step, layer]
        if idle:
            lo = hi = np.full(frac.shape, np.nan)
        else:
            boot = corr["boot"].reshape(len(steps), self.config.bootstrap, n, n_layers, d).mean(axis=(2, 4))
            lo, hi = L.percentile_interval(boot, self.config.confidence)             # [step, layer]
        result = self.new_result(unit)
        result.add("steps", np.asarray(steps), ("step",))
        shape4, dims4 = (len(steps), n, n, n_layers, d), ("step", "seed", "other_seed", "layer", "neuron")
        result.add("final_partner_corr", corr["final"].reshape(shape4), dims4)
        result.add("final_partner", flat["best_match"][-1].reshape(shape4[1:]), dims4[1:])
        shape3, dims3 = (len(steps), n, n_layers, d), ("step", "seed", "layer", "neuron")
        for name, arr in (("excess_final_partner", excess_final), ("self_corr", corr["self"]),
                          ("universal", flat["universal"])):
            result.add(name, arr.reshape(shape3), dims3)
        result.add("lock_in_index", lock_in.reshape(shape3[1:]), dims3[1:])
        result.add("identity_index", identity.reshape(shape3[1:]), dims3[1:])
        for name, arr in (("universal_fraction", frac), ("universal_fraction_lo", lo), ("universal_fraction_hi", hi)):
            result.add(name, arr, ("step", "layer"))
        # the step-t partner's correlation over every token is universal-neurons' max correlation at t: a check
        # that the two passes read the same activations at the same positions
        gap = np.nanmax(np.abs(corr["own"] - flat["max_corr"])) if np.isfinite(corr["own"]).any() else 0.0
        counts = {k: L.index_counts(v, universal_last, n_layers, d, len(steps))
                  for k, v in (("lock_in_counts", lock_in), ("identity_counts", identity))}
        result.scalars.update(steps=steps, seeds=seeds, threshold=threshold, identity_min=self.config.identity_min,
                              passes_run=not idle,
                              n_universal=int(universal_last.sum()), max_corr_gap=float(gap), **counts,
                              order=L.order_counts(lock_in, identity, universal_last),
                              **L.seed_agreement(lock_in, flat["best_match"][-1], universal_last))
        return result

    @staticmethod
    def _nothing(n_steps: int, n: int, units: int) -> dict[str, np.ndarray]:
        """The correlations of a run that needs no pass: undefined (NaN), and no neuron settles."""
        return {"final": np.full((n_steps, n, n, units), np.nan), "own": np.full((n_steps, n, n, units), np.nan),
                "self": np.full((n_steps, n, units), np.nan)}

    def _correlations(self, grid: dict, steps: list[int], seeds: list[int], flat: dict, threshold: float, ref,
                      ucfg: dict, ctx: Context) -> dict[str, np.ndarray]:
        """Per step, from one lockstep pass: ``final`` [step, seed, other, unit] (with the last step's partners),
        ``own`` (with the step's own partners), ``self`` [step, seed, unit] (with itself at the last step), and
        ``boot`` [step, draw, seed, unit] (universal in each bootstrap draw of prompt blocks)."""
        c, n, units = self.config, len(seeds), flat["best_match"].shape[-1]
        prompts = ctx.prompts(ref)
        keep = PositionFilter.of(prompts, ucfg.get("keep_first_position", False),
                                 ucfg.get("keep_special_tokens", False))
        out = {"final": np.full((len(steps), n, n, units), np.nan), "own": np.full((len(steps), n, n, units), np.nan),
               "self": np.ones((len(steps), n, units)),
               "boot": np.zeros((len(steps), c.bootstrap, n, units), dtype=bool)}
        weights = L.bootstrap_weights(c.blocks, c.bootstrap, c.seed)
        for i, step in enumerate(steps):
            sums = self._step_sums(grid, step, steps[-1], seeds, flat["best_match"][-1], flat["best_match"][i],
                                   prompts, keep, ctx)
            draws = {}
            for (kind, a, b), (acc, name) in sums.items():
                r = acc.correlation(name).cpu().numpy()
                if kind == "self":
                    out["self"][i, a] = r
                else:
                    out[kind][i, a, b] = r
                if kind == "own":
                    draws[(a, b)] = acc.correlation(name, weights).cpu().numpy()    # [draw, unit]
            out["boot"][i] = L.bootstrap_universal(draws, flat["baseline_max"][i], threshold, n)
        return out

    def _step_sums(self, grid: dict, step: int, last: int, seeds: list[int], final_partner: np.ndarray,
                   own_partner: np.ndarray, prompts, keep, ctx: Context) -> dict:
        """{("final" | "own", a, b) or ("self", a, a): (ColumnPairs, name)} over every token of ``prompts``, for step
        ``step``; the models held together when they fit, else the pairs each statistic needs, two at a time. At
        the last step the final partners are the step's own, so "final" is not computed twice."""
        from interp.activations.lockstep import ModelGroup
        from interp.maths.stats import ColumnPairs

        n, c = len(seeds), self.config
        want = {("own", a, b): ((a, step), (b, step), own_partner[a, b]) for a in range(n) for b in range(n) if a != b}
        if step != last:
            want |= {("final", a, b): ((a, step), (b, step), final_partner[a, b])
                     for a in range(n) for b in range(n) if a != b}
            want |= {("self", a, a): ((a, step), (a, last), None) for a in range(n)}
        keys = sorted({k for x, y, _ in want.values() for k in (x, y)})
        size = max(2 * (grid[k].size or 0) for k in keys)   # a float16 file doubles in float32
        groups = [keys] if ModelGroup.fits(size, len(keys), ctx.device) else sorted({tuple(sorted({x, y}))
                                                                                        for x, y, _ in want.values()})
        out: dict = {}
        for members in groups:
            todo = {w: p for w, p in want.items() if w not in out and {p[0], p[1]} <= set(members)}
            if not todo:
                continue
            group = ModelGroup([grid[k] for k in members], ctx.device, ctx.settings.allow_pickle,
                               ctx.settings.cache.nonfinite)
            try:
                models = {k: group[grid[k].id] for k in members}
                sums = ColumnPairs(todo, c.blocks, ctx.device)
                for block, acts in block_stream(models, prompts, ctx.batch_rows(prompts),
                                                models[members[0]].cfg.n_layers, keep, c.blocks, ctx.device):
                    sums.add(acts, block)
            finally:
                group.close()
            out |= {w: (sums, w) for w in todo}
        if step == last:
            out |= {("final", a, b): out[("own", a, b)] for a in range(n) for b in range(n) if a != b}
        return out


def upstream_per_step(unit: Unit, steps: list[int]) -> list:
    """universal-neurons' result at each step of the unit, or one error naming the steps that have none."""
    found = unit.upstream.get(UPSTREAM, {})
    out = [found.get(unit_id(unit.refs[0].run, s)) for s in steps]
    missing = [s for s, u in zip(steps, out) if u is None]
    if missing:
        raise ResultError(f"universal-lineage on run {unit.refs[0].run!r}: no universal-neurons result at step(s) "
                          f"{missing}; run universal-neurons on the same checkpoints first")
    return out


def series_grid(refs: tuple[CheckpointRef, ...]) -> tuple[list[int], list[int], dict]:
    """(steps, seeds, {(seed index, step): ref}) of a run's series unit, every seed at every step."""
    steps, seeds = sorted({r.step for r in refs}), sorted({r.seed for r in refs})
    grid = {(seeds.index(r.seed), r.step): r for r in refs}
    if len(grid) != len(steps) * len(seeds):
        raise ResultError(f"universal-lineage on run {refs[0].run!r}: not every seed has every step")
    return steps, seeds, grid


def block_stream(models: dict, prompts, rows: int, n_layers: int, keep, blocks: int, device: str
                 ) -> Iterator[tuple[int, dict[tuple[int, int], torch.Tensor]]]:
    """(block, {model key: [token, layer * d_mlp] MLP activations}) per batch of prompt rows, the rows split into
    ``blocks`` contiguous blocks and no batch crossing a block's edge; only the positions ``keep`` counts."""
    import torch

    from interp.activations.lockstep import masked, stream

    hooks = {k: {act_name("post", layer) for layer in range(n_layers)} for k in models}
    bounds = np.linspace(0, len(prompts), blocks + 1).astype(int)
    for block, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if hi <= lo:
            continue
        for part, acts in stream(models, RowView(prompts.tokens, lo, hi), rows, hooks, device):
            m = keep.mask(lo + part.start, lo + part.stop) if keep is not None else None
            yield block, {k: torch.cat([masked(acts[(k, act_name("post", layer))], m) for layer in range(n_layers)],
                                       dim=1) for k in models}


class RowView:
    """Rows ``lo:hi`` of a token array, as ``lockstep.stream`` reads prompts (``tokens`` and ``len``)."""

    def __init__(self, tokens, lo: int, hi: int):
        self.tokens = tokens[lo:hi]

    def __len__(self) -> int:
        return len(self.tokens)
