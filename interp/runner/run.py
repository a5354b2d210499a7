"""Running a plan: each job caches what its analyzers need and runs the units not already complete for the same
inputs; then each analyzer summarizes exactly the units of this run.

A unit's *key* is everything its result depends on (``unit_key``); a stored result counts as complete only under
the same key, so other weights, another config, other prompts or other cache settings recompute instead of serving
a stale result.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.analyzers.base import Analyzer, Scope, Unit
from interp.errors import PromptError
from interp.results import (
    SCHEMA_VERSION,
    Result,
    is_complete,
    load_result,
    load_results,
    save_result,
    unit_id,
    unit_paths,
)
from interp.runner.context import Context, Needs
from interp.trust import atomic

if TYPE_CHECKING:
    from interp.checkpoints.manifest import CheckpointRef
    from interp.runner.options import RunOptions
    from interp.runner.plan import Job, Plan


@dataclass(frozen=True)
class UnitOutcome:
    analyzer: str
    unit_id: str
    key: str
    ran: bool


@dataclass
class AnalysisReport:
    out_dir: Path
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    index: Path | None = None     # index.html: the report over the results (interp.report.build)
    outcomes: list = field(default_factory=list)
    # per unit (run s, caching s, fed by another analyzer's pass); None: unknown
    unit_seconds: dict[str, list[tuple]] = field(default_factory=dict)
    summarize_s: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)   # jobs that failed after their retries (Dask), by name
    cache_bytes: int = 0          # what the activation cache held at the end of the run
    cache_kept: bool = False      # whether it was kept (RunOptions.keep_cache), or removed


def read_inputs(analyzer: Analyzer, ref: CheckpointRef, ctx: Context) -> dict[str, str]:
    """{input: digest} of every input ``analyzer`` reads on ``ref``: its required ones, and its extra ones that the
    run offers."""
    have = ctx.available(ref)
    out = {}
    for name in (*analyzer.inputs, *analyzer.inputs_any, *analyzer.extra_inputs):
        if name in have and name not in out:
            out[name] = (ctx.prompts(ref).digest() if name == "prompts" else
                         ctx.tasks(ref).digest() if name == "tasks" else ctx.concepts(ref).digest())
    return out


def unit_key(analyzer: Analyzer, refs: tuple[CheckpointRef, ...], ctx: Context,
             upstream: dict[str, dict[str, Result]] | None = None) -> str:
    """Everything a unit's result depends on: weights (sha256), config, method version, the inputs it reads (the
    evaluation prompts, a task file, a concepts file), cache settings and processing, any other file the
    analyzer reads, and the keys of the other analyzers' results it reads (``upstream``)."""
    s = ctx.settings
    digests = read_inputs(analyzer, refs[0], ctx)
    parts = {"schema": SCHEMA_VERSION, "analyzer": analyzer.name, "version": analyzer.version,
             "config": analyzer.config_dict(),
             "checkpoints": [(r.id, r.sha256, r.processing.key()) for r in refs],
             "prompts": digests.pop("prompts", None), "storage_dtype": s.cache.storage_dtype,
             "nonfinite": s.cache.nonfinite}
    if digests:   # tasks, concepts: only when read, so the keys of analyzers that read neither stay as they were
        parts["sets"] = digests
    if inputs := analyzer.input_digests():
        parts["inputs"] = inputs
    if upstream:
        parts["reads"] = {name: sorted((uid, r.provenance.get("unit_key")) for uid, r in found.items())
                          for name, found in sorted(upstream.items())}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def run_job(job: Job, progress: Any = None) -> list[UnitOutcome]:
    """Cache what the job's analyzers need, then run and save every unit not complete under its key. ``progress``
    (an ``interp.runner.progress.Progress``, in-process runs only) hears which unit runs and when each is done.
    Checkpoint analyzers riding a seed group's pass (``job.tapped``) are fed by it, or run on their own when no
    pass of the job reached them (their driver was complete already)."""
    from interp.checkpoints.loading import resolve_device
    from interp.runner import threads

    opts = job.options
    threads.configure(requested=opts.threads)
    ctx = Context.shared(opts.context_settings(resolve_device(opts.device)))
    for ref in job.refs:   # every input built and checked against the model before any compute
        for a in job.analyzers + job.tapped:
            read_inputs(a, ref, ctx)
    if job.scope is Scope.SEEDS and len({json.dumps(read_inputs(a, r, ctx), sort_keys=True)
                                         for a in job.analyzers for r in job.refs}) != len(job.analyzers):
        raise PromptError(f"the seeds of run {job.refs[0].run!r} at step {job.refs[0].step} were given different "
                          f"prompts; a cross-seed analysis compares activations on identical prompts")
    units = []
    for a in job.analyzers:
        upstream = upstream_results(a, job.refs, opts.out_dir)
        units.append((a, Unit(a.name, job.refs, upstream), unit_key(a, job.refs, ctx, upstream)))
    riders = [(a, Unit(a.name, (r,)), unit_key(a, (r,), ctx)) for a in job.tapped for r in job.refs]
    pending = [(a, u, k) for a, u, k in units if not is_complete(opts.out_dir, a.name, u.id, key=k)]
    waiting = [(a, u, k) for a, u, k in riders if not is_complete(opts.out_dir, a.name, u.id, key=k)]
    if progress is not None:
        progress.done(len(units) + len(riders) - len(pending) - len(waiting))
    for a, u, _ in waiting:
        ctx.request_tap(u.refs[0], a.name, lambda ref, model, prompts, a=a: a.tap(ref, model, prompts, ctx.device))
    try:
        if pending:
            t0 = time.perf_counter()
            for ref in job.refs:
                if progress is not None:
                    progress.working("caching activations", ref.id)
                ctx.ensure(ref, [n for a, _, _ in pending for n in _as_list(a.needs(ref))])
            cached = (time.perf_counter() - t0) / len(pending)
            for analyzer, unit, key in pending:
                _run_unit(analyzer, unit, key, ctx, opts, progress, cached)
        for analyzer, unit, key in waiting:
            tap = ctx.taps_made.get((analyzer.name, unit.refs[0].id))
            fed = tap.result(analyzer.new_result(unit)) if tap is not None and tap.fed else None
            _run_unit(analyzer, unit, key, ctx, opts, progress, 0.0, fed)
    finally:
        ctx.drop_taps()
    ran = {id(u) for _, u, _ in pending + waiting}
    return [UnitOutcome(a.name, u.id, k, id(u) in ran) for a, u, k in units + riders]


def upstream_results(analyzer: Analyzer, refs: tuple[CheckpointRef, ...], out_dir: Path
                     ) -> dict[str, dict[str, Result]]:
    """{name: {unit id: Result}} of each analyzer in ``analyzer.reads`` over ``refs``: the complete units an earlier
    stage saved (each file's hash checked on loading, as every result file is)."""
    from interp.analyzers import registry

    out: dict[str, dict[str, Result]] = {}
    for name in analyzer.reads:
        cls = registry.get(name)
        if cls.scope is Scope.CHECKPOINT:
            ids = [r.id for r in refs]
        else:
            ids = sorted({unit_id(r.run, r.step) for r in refs})
        out[name] = {uid: load_result(unit_paths(out_dir, name, uid)[1], cls.Result) for uid in ids
                     if is_complete(out_dir, name, uid)}
    return out


def _run_unit(analyzer: Analyzer, unit: Unit, key: str, ctx: Context, opts: RunOptions, progress: Any,
              cached: float, result: Result | None = None) -> None:
    """Run one unit (unless a pass already made its ``result``), record what it read and cost, and save it."""
    if progress is not None:
        progress.working(analyzer.name, unit.id)
    t0 = time.perf_counter()
    shared = result is not None
    if result is None:
        result = analyzer.run(unit, ctx)
    # wall times travel with the result, so a resumed run's report still knows what each unit cost (a unit fed by
    # another analyzer's forward pass costs nothing of its own, and says so); the inputs' digests let a summary
    # check that results it joins were made on the same prompts
    result.provenance.update(unit_key=key, seconds=round(time.perf_counter() - t0, 4),
                             cache_seconds=round(cached, 4), shared_pass=shared,
                             **read_inputs(analyzer, unit.refs[0], ctx))
    save_result(result, opts.out_dir)
    if progress is not None:
        progress.done(1)


def _as_list(needs: Needs | list[Needs]) -> list[Needs]:
    return list(needs) if isinstance(needs, (list, tuple)) else [needs]


def concurrency(peak_bytes: int, device: str) -> int | None:
    """How many jobs of a stage whose jobs each hold up to ``peak_bytes`` may run side by side on this machine: as
    many as fit in 80% of the memory free now (None: unknown, no limit). Two lockstep jobs of a 70m-shaped series
    (12 GB each) were killed by the OOM killer on a 24 GB machine before this."""
    from interp.activations.lockstep import free_memory

    free = free_memory("cpu" if device.startswith("cuda") else device)
    if not free or not peak_bytes:
        return None
    return max(1, int(0.8 * free // peak_bytes))


def widened(jobs: list[Job], options: RunOptions, limit: int | None) -> list[Job]:
    """The jobs with more torch threads each when memory lets fewer of them run at once than there are local worker
    processes: the cores the idle workers would have used go to the running ones."""
    import dataclasses

    local = not options.dask and options.dask_address is None
    if limit is None or not local or not options.workers or limit >= options.workers:
        return jobs
    threads = max(1, (options.threads or 1) * options.workers // limit)
    return [dataclasses.replace(j, options=dataclasses.replace(j.options, threads=threads)) for j in jobs]


def execute(plan: Plan, analyzers: list[Analyzer], options: RunOptions, executor: Any,
            peaks: list[int] | None = None) -> AnalysisReport:
    """Run the plan's stages in order on ``executor``, one progress bar over every unit, then summarize. ``peaks``:
    per stage, the largest memory one job holds (``interp.runner.estimate.stage_peaks``), which bounds how many run
    at once on this machine."""
    from interp.runner.progress import Progress

    progress = Progress(plan.n_units, enabled=options.progress)
    outcomes: list[UnitOutcome] = []
    peaks = peaks or [0] * len(plan.stages)
    try:
        for stage, desc, peak in zip(plan.stages, plan.STAGE_NAMES, peaks):
            limit = concurrency(peak, options.device)
            jobs = widened(list(stage), options, limit)
            done = executor.map(run_job, jobs, desc=desc, names=[j.name for j in stage], progress=progress,
                                limit=limit)
            outcomes += [o for job_outcomes in done for o in job_outcomes]
        report = summarize(analyzers, outcomes, options, progress, plan.missing)
    finally:
        progress.close()
        Context.close_shared()
    report.failed = [f"{f.job}: {f.error}" for f in getattr(executor, "failures", [])]
    return report


def summarize(analyzers: list[Analyzer], outcomes: list[UnitOutcome], options: RunOptions,
              progress: Any, missing: dict[str, list[str]] | None = None) -> AnalysisReport:
    """Each analyzer's summary over exactly the units of this run, written to ``<analyzer>/summary.json``; an
    analyzer with no units says why (``missing``: the inputs no checkpoint offered, and the flag for each)."""
    missing = missing or {}
    report = AnalysisReport(options.out_dir, ran=sum(o.ran for o in outcomes), outcomes=outcomes)
    report.skipped = len(outcomes) - report.ran
    results = {a.name: [load_result(unit_paths(options.out_dir, o.analyzer, o.unit_id)[1], a.Result)
                        for o in outcomes if o.analyzer == a.name] for a in analyzers}
    for a in analyzers:
        progress.working("summarizing", a.name)
        t0 = time.perf_counter()
        mine = results[a.name]
        report.unit_seconds[a.name] = [(r.provenance.get("seconds"), r.provenance.get("cache_seconds"),
                                        bool(r.provenance.get("shared_pass"))) for r in mine]
        uses = {name: same_inputs(results.get(name) or load_results(options.out_dir, name), mine) for name in a.uses}
        summary = a.summarize(mine, uses) if mine else {}
        summary = {"analyzer": a.name, "units": len(mine), "question": a.question, "method": a.method(), **summary}
        if not mine:
            summary["skipped"] = skip_reason(a, missing.get(a.name, []))
        atomic.write_text(options.out_dir / a.name / "summary.json", json.dumps(summary, indent=1))
        report.summaries[a.name] = summary
        report.summarize_s[a.name] = time.perf_counter() - t0
    return report


def skip_reason(analyzer: Analyzer, missing: list[str]) -> str:
    """Why an analyzer had nothing to analyse, naming the flag that would supply what it lacks."""
    from interp.runner.context import SUPPLIED_BY

    if missing:
        def supply(m: str) -> str:
            return " or ".join(SUPPLIED_BY[part] for part in m.split(" or "))

        return "nothing to analyse: it needs " + "; ".join(f"{m} ({supply(m)})" for m in missing)
    if analyzer.requires:
        return f"nothing to analyse: it needs {analyzer.requires}"
    return "nothing to analyse in the selected checkpoints"


def same_inputs(used: list[Result], results: list[Result]) -> list[Result]:
    """The results of ``used`` made from checkpoints (id and sha256) and prompts that ``results`` were made from
    too: a join never pairs numbers computed on other weights or other prompts."""
    def inputs(r: Result) -> set[tuple]:
        return {(c["id"], c.get("sha256"), r.provenance.get("prompts")) for c in r.provenance["checkpoints"]}

    seen = set().union(*(inputs(r) for r in results)) if results else set()
    return [u for u in used if u.provenance.get("prompts") is not None and inputs(u) <= seen]


def write_record(report: AnalysisReport, series: Any, refs: list[CheckpointRef], analyzers: list[Analyzer],
                 options: RunOptions, device: str, command: list[str] | None, started: float) -> None:
    """``run.json``: what produced these results, for the report's provenance (``interp.report.provenance``)."""
    from interp.report import provenance as P

    call = "interp.analyze() from Python; analyzers: " + ", ".join(a.name for a in analyzers)
    P.write_run_record(options.out_dir, {
        "command": P.command_line(command, call), "series": P.series_record(series, refs),
        "options": P.options_record(options), "analyzers": {a.name: a.config_dict() for a in analyzers},
        "versions": P.versions(), "device": P.device_info(options.device, device),
        "timings": P.timings(report.outcomes, report.unit_seconds, report.summarize_s),
        "wall_s": round(time.perf_counter() - started, 2)})
