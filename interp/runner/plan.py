"""Planning: which (analyzer, checkpoints) units a run has, grouped into jobs, checked before anything is computed.

A ``Job`` is a picklable unit of scheduling: some checkpoints and the analyzers to run on them once their
activations are cached. Jobs come in three stages, run in order: one job per checkpoint (every checkpoint-scope
analyzer that selected it), then one per seed group (every seeds-scope analyzer that selected all of the group's
checkpoints), then one per run's series (run-scope analyzers, which may read what the earlier stages saved).
``Plan.verified`` checks the bytes of every planned checkpoint, once, before the first job runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from interp.analyzers.base import Analyzer, Scope
from interp.errors import ManifestError, suggest

if TYPE_CHECKING:
    from interp.checkpoints.manifest import CheckpointRef, Series
    from interp.runner.options import RunOptions
    from interp.trust.hashes import Verifier


@dataclass(frozen=True)
class Job:
    """Some checkpoints, and the analyzers to run on them (checkpoint scope: one ref; seeds scope: every seed of
    a step). Picklable: the same job runs in this process or on any Dask worker that sees the files."""

    refs: tuple[CheckpointRef, ...]
    analyzers: tuple[Analyzer, ...]
    scope: Scope
    options: RunOptions
    # checkpoint analyzers run on each of the group's checkpoints inside one of ``analyzers``' forward passes
    tapped: tuple[Analyzer, ...] = ()

    @property
    def name(self) -> str:
        return f"{'+'.join(a.name for a in self.analyzers + self.tapped)} on {', '.join(r.id for r in self.refs)}"


@dataclass(frozen=True)
class Plan:
    """The stages of jobs of one ``analyze`` call."""

    stages: tuple[tuple[Job, ...], tuple[Job, ...], tuple[Job, ...]]
    # per analyzer, the inputs it needs that no selected checkpoint offers (why it has nothing to do)
    missing: dict[str, list[str]] = field(default_factory=dict, compare=False)

    STAGE_NAMES = ("checkpoints", "seed groups", "series")

    @property
    def refs(self) -> list[CheckpointRef]:
        """Every planned checkpoint once, in plan order."""
        seen: dict[str, CheckpointRef] = {}
        for stage in self.stages:
            for job in stage:
                for r in job.refs:
                    seen.setdefault(r.id, r)
        return list(seen.values())

    @property
    def n_units(self) -> int:
        return sum(len(j.analyzers) + len(j.tapped) * len(j.refs) for stage in self.stages for j in stage)

    def verified(self, verifier: Verifier, progress: bool = False) -> Plan:
        """The same plan with every checkpoint's bytes checked against the manifest (size, sha256), each once,
        and the hash actually read recorded on its ref."""
        checked = {r.id: r for r in verify_refs(self.refs, verifier, progress)}
        return Plan(tuple(tuple(replace(j, refs=tuple(checked[r.id] for r in j.refs)) for j in stage)
                          for stage in self.stages), self.missing)


def select_refs(series: Series, runs: tuple[str, ...] | None) -> list[CheckpointRef]:
    """The series' checkpoints, only those of ``runs`` when given (an unknown run is an error naming the valid)."""
    refs = series.refs()
    if runs is not None:
        known = sorted({r.run for r in refs})
        unknown = [r for r in runs if r not in known]
        if unknown:
            raise ManifestError(f"--run {unknown[0]!r}: no such run in {series.source or series.root}; runs: "
                                f"{known}." + suggest(unknown[0], known))
        refs = [r for r in refs if r.run in runs]
    return refs


def selection(refs: list[CheckpointRef], analyzer: Analyzer, available: dict[str, set[str]]) -> list[CheckpointRef]:
    """The checkpoints ``analyzer`` runs on: those offering every input it needs, then its own ``select``."""
    def offers(r: CheckpointRef) -> bool:
        have = available[r.id]
        return set(analyzer.inputs) <= have and (not analyzer.inputs_any or bool(set(analyzer.inputs_any) & have))

    return analyzer.select([r for r in refs if offers(r)])


def missing_inputs(refs: list[CheckpointRef], analyzer: Analyzer, available: dict[str, set[str]]) -> list[str]:
    """The inputs ``analyzer`` needs that no checkpoint of ``refs`` offers (what to say when it skips)."""
    out = [i for i in analyzer.inputs if not any(i in available[r.id] for r in refs)]
    if analyzer.inputs_any and not any(set(analyzer.inputs_any) & available[r.id] for r in refs):
        out.append(" or ".join(analyzer.inputs_any))
    return out


def plan(refs: list[CheckpointRef], analyzers: list[Analyzer], options: RunOptions,
         available: dict[str, set[str]] | None = None) -> Plan:
    """One job per checkpoint, then one per seed group of two or more seeds, then one per run whose seeds share
    two or more steps. ``available``: the inputs each checkpoint offers (``Context.available``; default: the
    evaluation prompts only)."""
    available = available or {r.id: {"prompts"} for r in refs}
    chosen = {a.name: {r.id for r in selection(refs, a, available)} for a in analyzers}
    checkpoint_jobs = []
    for r in refs:
        mine = tuple(a for a in analyzers if a.scope is Scope.CHECKPOINT and r.id in chosen[a.name])
        if mine:
            checkpoint_jobs.append(Job((r,), mine, Scope.CHECKPOINT, options))
    groups: dict[tuple[str, int], list[CheckpointRef]] = {}
    for r in refs:
        groups.setdefault((r.run, r.step), []).append(r)
    seed_jobs = []
    for _, group in sorted(groups.items()):
        group = sorted(group, key=lambda r: r.seed)
        mine = tuple(a for a in analyzers if a.scope is Scope.SEEDS and all(r.id in chosen[a.name] for r in group))
        if len(group) >= 2 and mine:
            seed_jobs.append(Job(tuple(group), mine, Scope.SEEDS, options))
    checkpoint_jobs, seed_jobs = share_passes(checkpoint_jobs, seed_jobs, chosen)
    run_jobs = []
    for group in series_groups(refs):
        mine = tuple(a for a in analyzers if a.scope is Scope.RUN and all(r.id in chosen[a.name] for r in group))
        if mine:
            run_jobs.append(Job(tuple(group), mine, Scope.RUN, options))
    missing = {a.name: missing_inputs(refs, a, available) for a in analyzers}
    return Plan((tuple(checkpoint_jobs), tuple(seed_jobs), tuple(run_jobs)), {n: m for n, m in missing.items() if m})


def series_groups(refs: list[CheckpointRef]) -> list[list[CheckpointRef]]:
    """Per run: the checkpoints of the seeds present at its last step, at every step all of them have (by step,
    then seed); a run with fewer than two such seeds or steps has none."""
    by_run: dict[str, dict[int, dict[int, CheckpointRef]]] = {}
    for r in refs:
        by_run.setdefault(r.run, {}).setdefault(r.step, {})[r.seed] = r
    out = []
    for _, steps in sorted(by_run.items()):
        seeds = set(steps[max(steps)])
        shared = [s for s in sorted(steps) if seeds <= set(steps[s])]
        if len(seeds) >= 2 and len(shared) >= 2:
            out.append([steps[s][seed] for s in shared for seed in sorted(seeds)])
    return out


def share_passes(checkpoint_jobs: list[Job], seed_jobs: list[Job], chosen: dict[str, set[str]]
                 ) -> tuple[list[Job], list[Job]]:
    """Move each checkpoint analyzer that can ride a seed group's forward pass (``Analyzer.taps``) into that group's
    job, for the checkpoints of the group: one pass over the tokens serves both, instead of one each."""
    drivers = {id(j): {a.name for a in j.analyzers if getattr(a, "streams", False)} for j in seed_jobs}
    moved: dict[str, set[str]] = {}        # checkpoint id -> analyzers moved off its own job
    out_seed = []
    for j in seed_jobs:
        riders: dict[str, Analyzer] = {}
        for cj in checkpoint_jobs:
            if cj.refs[0] in j.refs:
                for a in cj.analyzers:
                    if a.taps in drivers[id(j)] and all(r.id in chosen[a.name] for r in j.refs):
                        riders[a.name] = a
        for r in j.refs:
            moved.setdefault(r.id, set()).update(riders)
        out_seed.append(replace(j, tapped=tuple(riders.values())) if riders else j)
    out_ck = []
    for cj in checkpoint_jobs:
        keep = tuple(a for a in cj.analyzers if a.name not in moved.get(cj.refs[0].id, set()))
        if keep:
            out_ck.append(replace(cj, analyzers=keep))
    return out_ck, out_seed


def verify_refs(refs: list[CheckpointRef], verifier: Verifier, progress: bool = False) -> list[CheckpointRef]:
    """Every ref with its bytes checked against the manifest (size, sha256) and the hash actually read recorded."""
    from tqdm.auto import tqdm

    quiet = not progress or len(refs) < 20 or not sys.stderr.isatty()   # no bar in logs and pipes
    return [r.verified(verifier) for r in tqdm(refs, desc="verify checkpoints", disable=quiet, leave=False)]
