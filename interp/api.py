"""What the CLI and users call: ``load_series``, ``analyze``.

``analyze`` plans (analyzer, unit) pairs, skips the complete ones, and runs the rest checkpoint by checkpoint: for
each checkpoint it caches the union of every pending analyzer's hooks in one forward pass, runs the checkpoint-scope
units, and releases the model; units over all seeds of a step run after their seeds are cached. Then each analyzer
summarizes the whole series (headline numbers and figures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp.activations.cache import ActivationCache, CacheSettings
from interp.analyzers import registry
from interp.analyzers.base import Analyzer, Needs, Scope, Unit
from interp.context import Context, PromptSource
from interp.manifest import CheckpointRef, Series, discover, load_manifest
from interp.results import is_complete, load_results, save_result


def bundled_manifest() -> Path:
    # a plain path, not importlib.resources: the checkpoints are read by path (safetensors, h5py), and interp is
    # never installed zipped
    return Path(__file__).resolve().parent / "data" / "bundled" / "manifest.yaml"


def load_series(source: str | Path | Series | None = None) -> Series:
    """A series from a manifest file, a checkpoint directory, or (None) the tiny series bundled with interp."""
    if isinstance(source, Series):
        return source
    if source is None:
        return load_manifest(bundled_manifest())
    p = Path(source)
    return discover(p) if p.is_dir() else load_manifest(p)


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path = Path("interp-results")
    device: str = "auto"
    batch_size: int = 512
    cache_dir: Path | None = None      # default: out_dir / "cache"
    storage_dtype: str = "float32"
    prompts: PromptSource = PromptSource()
    runs: tuple[str, ...] | None = None
    progress: bool = True
    allow_pickle: bool = False

    def __post_init__(self):
        # callers from Python pass strings; every use below joins paths
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))


@dataclass
class AnalysisReport:
    out_dir: Path
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    index: Path | None = None     # index.html: every analyzer's headline numbers and figures on one page


@dataclass(frozen=True)
class Job:
    """A picklable unit of scheduling: some refs, and the analyzer units to run once they are cached."""

    refs: tuple[CheckpointRef, ...]
    analyzers: tuple[tuple[str, dict], ...]
    scope: Scope
    options: RunOptions


def _instantiate(name: str, config: dict) -> Analyzer:
    cls = registry.get(name)
    return cls(cls.config_from(config))


def run_job(job: Job) -> int:
    """Cache what the job's analyzers need, then run and save every incomplete unit. Returns units run."""
    from interp.loading import resolve_device

    opts = job.options
    device = resolve_device(opts.device)
    cache = ActivationCache(CacheSettings(opts.cache_dir or opts.out_dir / "cache", opts.batch_size,
                                          opts.storage_dtype), device=device, progress=opts.progress)
    ctx = Context(cache, device, opts.prompts, opts.allow_pickle)
    analyzers = [_instantiate(n, c) for n, c in job.analyzers]
    pending = [(a, Unit(a.name, job.refs)) for a in analyzers]
    pending = [(a, u) for a, u in pending if not is_complete(opts.out_dir, a.name, u.id, a.config_dict())]
    if not pending:
        return 0
    if job.scope is Scope.SEEDS:
        digests = {ctx.prompts(r).digest() for r in job.refs}
        assert len(digests) == 1, f"prompts differ across seeds of {job.refs[0].run}"
    for ref in job.refs:
        needs = [a.needs(ref) for a, _ in pending]
        ctx.ensure(ref, Needs(hooks=tuple(sorted({h for n in needs for h in n.hooks})),
                              grad_hooks=tuple(sorted({h for n in needs for h in n.grad_hooks}))))
    for analyzer, unit in pending:
        save_result(analyzer.run(unit, ctx), opts.out_dir)
    return len(pending)


def plan(series: Series, analyzers: list[Analyzer], options: RunOptions) -> list[list[Job]]:
    """Stages of jobs: one job per checkpoint (every checkpoint-scope analyzer that selected it), then one per seed
    group (every seeds-scope analyzer that selected all of the group's checkpoints)."""
    refs = [r for r in series.refs() if options.runs is None or r.run in options.runs]
    if not refs:
        return [[], []]
    chosen = {a.name: {r.id for r in a.select(refs)} for a in analyzers}
    scope = {a.name: a.needs(refs[0]).scope for a in analyzers}
    spec = {a.name: (a.name, a.config_dict()) for a in analyzers}
    stages: list[list[Job]] = [[], []]
    for r in refs:
        names = [a.name for a in analyzers if scope[a.name] is Scope.CHECKPOINT and r.id in chosen[a.name]]
        if names:
            stages[0].append(Job((r,), tuple(spec[n] for n in names), Scope.CHECKPOINT, options))
    keep = {r.id for r in refs}
    for group in series.seed_groups():
        group = [r for r in group if r.id in keep]
        names = [a.name for a in analyzers if scope[a.name] is Scope.SEEDS
                 and all(r.id in chosen[a.name] for r in group)]
        if len(group) >= 2 and names:
            stages[1].append(Job(tuple(group), tuple(spec[n] for n in names), Scope.SEEDS, options))
    return stages


def analyze(source: str | Path | Series | None = None, analyzers: list[str] | None = None,
            settings: dict[str, dict[str, Any]] | None = None, options: RunOptions = RunOptions(),
            executor: Any = None) -> AnalysisReport:
    """Run analyzers over a series and write results under ``options.out_dir``; returns headline summaries.

    ``settings`` maps analyzer name -> config overrides (validated: unknown keys list the valid ones).
    """
    from interp.errors import ConfigError
    from interp.executors import SerialExecutor

    series = load_series(source)
    names = analyzers or registry.names()
    settings = settings or {}
    for n in settings:
        if n not in names:
            raise ConfigError(f"settings given for analyzer {n!r}, which is not being run ({names})")
    instances = [_instantiate(n, settings.get(n, {})) for n in names]
    executor = executor or SerialExecutor(progress=options.progress)
    report = AnalysisReport(options.out_dir)
    from interp.loading import SLOT

    stages = plan(series, instances, options)
    try:
        for stage, desc in zip(stages, ("checkpoints", "seed groups")):
            ran = executor.map(run_job, stage, desc=desc)
            report.ran += sum(ran)
    finally:
        SLOT.clear()
    report.skipped = sum(len(j.analyzers) for stage in stages for j in stage) - report.ran
    for a in instances:
        results = load_results(options.out_dir, a.name, a.config_dict())
        summary = a.summarize(results, options.out_dir / a.name) if results else {}
        summary = {"analyzer": a.name, "units": len(results), **summary}
        (options.out_dir / a.name).mkdir(parents=True, exist_ok=True)
        (options.out_dir / a.name / "summary.json").write_text(json.dumps(summary, indent=1))
        report.summaries[a.name] = summary
    from interp.report.index import write_index

    report.index = write_index(options.out_dir, report.summaries)
    return report
