"""What the CLI and users call: ``load_series``, ``analyze``, ``load_result``.

``analyze`` validates everything before computing anything (options, the manifest, every planned checkpoint's
bytes against its sha256), plans (analyzer, unit) pairs, skips the ones already complete *for the same inputs*
(checkpoint hash, full config, prompts, cache settings: the unit key), and runs the rest checkpoint by checkpoint:
for each checkpoint it caches the union of every pending analyzer's hooks in one forward pass, runs the
checkpoint-scope units, and moves on (the model slot holds one model); units over all seeds of a step run after
their seeds are cached. Then each analyzer summarizes exactly the units of this run (headline numbers, figures).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from interp import atomic
from interp.activations.cache import CacheSettings
from interp.analyzers import registry
from interp.analyzers.base import Analyzer, Needs, Scope, Unit
from interp.config import Options, option
from interp.context import Context, ContextSettings
from interp.errors import ConfigError, ManifestError, PromptError, suggest
from interp.manifest import CheckpointRef, Series, discover, load_manifest
from interp.prompts import PromptSource
from interp.results import SCHEMA_VERSION, Result, is_complete, load_result as _load_result, save_result
from interp.trust import Verifier

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def bundled_manifest() -> Path:
    # a plain path, not importlib.resources: the checkpoints are read by path (safetensors, h5py), and interp is
    # never installed zipped
    return Path(__file__).resolve().parent / "data" / "bundled" / "manifest.yaml"


def load_series(source: str | Path | Series | None = None, allow_outside_paths: bool = False) -> Series:
    """A series from a manifest file, a checkpoint directory, or (None) the tiny series bundled with interp.
    Paths the manifest names must lie inside its folder unless ``allow_outside_paths``."""
    if isinstance(source, Series):
        return source
    if source is None:
        return load_manifest(bundled_manifest())
    p = Path(source)
    return discover(p, allow_outside_paths) if p.is_dir() else load_manifest(p, allow_outside_paths)


@dataclass(frozen=True)
class RunOptions(Options):
    """How ``analyze`` runs (not what it computes: that is each analyzer's config)."""

    out_dir: Path = Path("interp-results")
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    batch_size: int = option(512, ge=1)
    # and at most this many tokens per forward pass: 512 prompts of 2,048 tokens would be 200 GB of logits at a
    # 50k vocabulary, and even at n_ctx 64 passes of 8k tokens ran 2.6x faster than 32k here (cache-resident)
    batch_tokens: int = option(8192, ge=1)
    cache_dir: Path | None = None      # default: out_dir / "cache"
    storage_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    prompts: PromptSource = PromptSource()
    runs: tuple[str, ...] | None = None
    progress: bool = True
    allow_pickle: bool = False         # read pickle checkpoints (.pt, .bin), with torch's weights_only loader
    nonfinite: Literal["raise", "keep"] = "raise"   # NaN/inf in weights or activations: stop, or keep and count
    dask_address: str | None = None    # run units on this existing Dask scheduler (workers share the filesystem)
    retries: int = option(2, ge=0)     # per job, on a Dask cluster (a dead worker's job goes to another)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not DEVICE.fullmatch(self.device):
            raise ConfigError(f"RunOptions.device = {self.device!r}: must be auto, cpu, mps, cuda or cuda:N")

    @property
    def cache_root(self) -> Path:
        return self.cache_dir or self.out_dir / "cache"

    def context_settings(self, device: str) -> ContextSettings:
        return ContextSettings(CacheSettings(self.cache_root, self.batch_size, self.storage_dtype, self.nonfinite,
                                             self.batch_tokens),
                               device, self.prompts, self.allow_pickle, self.progress)


@dataclass
class AnalysisReport:
    out_dir: Path
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    index: Path | None = None     # index.html: the report over the results (interp.report.build)
    outcomes: list = field(default_factory=list)
    unit_seconds: dict[str, list[tuple]] = field(default_factory=dict)   # (run s, caching s) per unit, None: unknown
    summarize_s: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)   # jobs that failed after their retries (Dask), by name


@dataclass(frozen=True)
class Job:
    """A picklable unit of scheduling: some (verified) refs, and the analyzer units to run once they are cached."""

    refs: tuple[CheckpointRef, ...]
    analyzers: tuple[tuple[str, dict], ...]
    scope: Scope
    options: RunOptions


@dataclass(frozen=True)
class UnitOutcome:
    analyzer: str
    unit_id: str
    key: str
    ran: bool


def _instantiate(name: str, config: dict) -> Analyzer:
    cls = registry.get(name)
    return cls(cls.config_from(config))


def unit_key(analyzer: Analyzer, refs: tuple[CheckpointRef, ...], ctx: Context) -> str:
    """Everything a unit's result depends on. A stored result counts as complete only under the same key: other
    weights (sha256), another config, other prompts, other cache settings or processing all recompute."""
    s = ctx.settings
    parts = {"schema": SCHEMA_VERSION, "analyzer": analyzer.name, "version": analyzer.version,
             "config": analyzer.config_dict(),
             "checkpoints": [(r.id, r.sha256, r.processing.key()) for r in refs],
             "prompts": ctx.prompts(refs[0]).digest(), "storage_dtype": s.cache.storage_dtype,
             "nonfinite": s.cache.nonfinite}
    if inputs := analyzer.input_digests():   # only when there are any: other analyzers' keys stay as they were
        parts["inputs"] = inputs
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def run_job(job: Job, progress: Any = None) -> list[UnitOutcome]:
    """Cache what the job's analyzers need, then run and save every unit not complete under its key. ``progress``
    (an ``interp.progress.Progress``, in-process runs only) hears which unit is running and when each is done."""
    from interp.loading import resolve_device

    opts = job.options
    ctx = Context.shared(opts.context_settings(resolve_device(opts.device)))
    for ref in job.refs:
        ctx.prompts(ref)   # built and checked against the model (vocabulary, context) before any compute
    if job.scope is Scope.SEEDS and len({ctx.prompts(r).digest() for r in job.refs}) != 1:
        raise PromptError(f"the seeds of run {job.refs[0].run!r} at step {job.refs[0].step} were given different "
                          f"prompts; a cross-seed analysis compares activations on identical prompts")
    analyzers = [_instantiate(n, c) for n, c in job.analyzers]
    units = [(a, Unit(a.name, job.refs), unit_key(a, job.refs, ctx)) for a in analyzers]
    pending = [(a, u, k) for a, u, k in units if not is_complete(opts.out_dir, a.name, u.id, key=k)]
    if progress is not None:
        progress.done(len(units) - len(pending))
    if pending:
        t0 = time.perf_counter()
        for ref in job.refs:
            if progress is not None:
                progress.working("caching activations", ref.id)
            needs = [a.needs(ref) for a, _, _ in pending]
            ctx.ensure(ref, Needs(hooks=tuple(sorted({h for n in needs for h in n.hooks})),
                                  grad_hooks=tuple(sorted({h for n in needs for h in n.grad_hooks}))))
        cached = (time.perf_counter() - t0) / len(pending)
        for analyzer, unit, key in pending:
            if progress is not None:
                progress.working(analyzer.name, unit.id)
            t0 = time.perf_counter()
            result = analyzer.run(unit, ctx)
            # wall times travel with the result, so a resumed run's report still knows what each unit cost
            result.provenance.update(unit_key=key, seconds=round(time.perf_counter() - t0, 4),
                                     cache_seconds=round(cached, 4))
            save_result(result, opts.out_dir)
            if progress is not None:
                progress.done(1)
    ran = {id(u) for _, u, _ in pending}
    return [UnitOutcome(a.name, u.id, k, id(u) in ran) for a, u, k in units]


def select_refs(series: Series, options: RunOptions) -> list[CheckpointRef]:
    refs = series.refs()
    if options.runs is not None:
        known = sorted({r.run for r in refs})
        unknown = [r for r in options.runs if r not in known]
        if unknown:
            raise ManifestError(f"--run {unknown[0]!r}: no such run in {series.source or series.root}; runs: "
                                f"{known}." + suggest(unknown[0], known))
        refs = [r for r in refs if r.run in options.runs]
    return refs


def plan(refs: list[CheckpointRef], analyzers: list[Analyzer], options: RunOptions) -> list[list[Job]]:
    """Stages of jobs: one job per checkpoint (every checkpoint-scope analyzer that selected it), then one per seed
    group (every seeds-scope analyzer that selected all of the group's checkpoints)."""
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
    groups: dict[tuple[str, int], list[CheckpointRef]] = {}
    for r in refs:
        groups.setdefault((r.run, r.step), []).append(r)
    for _, group in sorted(groups.items()):
        group = sorted(group, key=lambda r: r.seed)
        names = [a.name for a in analyzers if scope[a.name] is Scope.SEEDS
                 and all(r.id in chosen[a.name] for r in group)]
        if len(group) >= 2 and names:
            stages[1].append(Job(tuple(group), tuple(spec[n] for n in names), Scope.SEEDS, options))
    return stages


def verifier_for(options: RunOptions) -> Verifier:
    """The process's verifier, remembering verified hashes in the cache folder across runs."""
    return Verifier.default(options.cache_root / "verified-hashes.json")


def verified_refs(refs: list[CheckpointRef], verifier: Verifier | None = None,
                  progress: bool = False) -> list[CheckpointRef]:
    """Every ref with its bytes checked against the manifest (size, sha256) and the hash actually read recorded."""
    from tqdm.auto import tqdm

    from interp.trust import Verifier as _V

    verifier = verifier or _V.default()
    out = []
    quiet = not progress or len(refs) < 20 or not sys.stderr.isatty()   # no bar in logs and pipes
    for r in tqdm(refs, desc="verify checkpoints", disable=quiet, leave=False):
        out.append(r.verified(verifier))
    return out


def analyze(source: str | Path | Series | None = None, analyzers: list[str] | None = None,
            settings: dict[str, dict[str, Any]] | None = None, options: RunOptions = RunOptions(),
            executor: Any = None, command: list[str] | None = None) -> AnalysisReport:
    """Run analyzers over a series and write results under ``options.out_dir``; returns headline summaries.

    ``settings`` maps analyzer name -> config overrides (validated: unknown keys list the valid ones). ``command``:
    the command line that asked for this (the CLI passes it), recorded in ``run.json`` for the report.
    """
    from interp.loading import resolve_device

    started = time.perf_counter()
    names = analyzers or registry.names()
    settings = settings or {}
    for n in settings:
        if n not in names:
            raise ConfigError(f"settings given for analyzer {n!r}, which is not being run ({names})")
    instances = [_instantiate(n, settings.get(n, {})) for n in names]
    device = resolve_device(options.device)
    series = load_series(source)
    refs = select_refs(series, options)
    stages = plan(refs, instances, options)
    planned = {r.id for stage in stages for job in stage for r in job.refs}
    verifier = verifier_for(options)
    checked = {r.id: r for r in verified_refs([r for r in refs if r.id in planned], verifier, options.progress)}
    stages = [[Job(tuple(checked[r.id] for r in j.refs), j.analyzers, j.scope, j.options) for j in stage]
              for stage in stages]
    for folder in (options.out_dir, options.cache_root):
        atomic.sweep_temporaries(folder)
    try:
        report = _execute(stages, instances, options, executor)
    finally:
        verifier.save()
    _write_record(report, series, list(checked.values()), instances, options, device, command, started)
    from interp.report.build import write_report

    report.index = write_report(options.out_dir)
    return report


def _execute(stages: list[list[Job]], instances: list[Analyzer], options: RunOptions,
             executor: Any) -> AnalysisReport:
    """Run the stages in order on ``executor`` (serial by default; an own Dask client for ``dask_address``),
    one progress bar over every unit, then summarize."""
    from interp.executors import DaskExecutor, SerialExecutor
    from interp.progress import Progress

    own = executor is None and options.dask_address is not None
    if own:
        executor = DaskExecutor(address=options.dask_address, retries=options.retries,
                                resources={"GPU": 1} if options.device.startswith("cuda") else None)
    executor = executor or SerialExecutor(progress=options.progress)
    progress = Progress(sum(len(j.analyzers) for stage in stages for j in stage), enabled=options.progress)
    outcomes: list[UnitOutcome] = []
    try:
        for stage, desc in zip(stages, ("checkpoints", "seed groups")):
            names = [f"{'+'.join(n for n, _ in j.analyzers)} on {', '.join(r.id for r in j.refs)}" for j in stage]
            outcomes += [o for job_outcomes in executor.map(run_job, stage, desc=desc, names=names,
                                                            progress=progress) for o in job_outcomes]
        report = _summarize(instances, outcomes, options, progress)
    finally:
        progress.close()
        Context.close_shared()
        if own:
            executor.close()
    report.failed = [f"{f.job}: {f.error}" for f in getattr(executor, "failures", [])]
    return report


def _summarize(instances: list[Analyzer], outcomes: list[UnitOutcome], options: RunOptions,
               progress: Any) -> AnalysisReport:
    """Each analyzer's summary over exactly the units of this run, written to ``<analyzer>/summary.json``."""
    report = AnalysisReport(options.out_dir)
    report.ran = sum(o.ran for o in outcomes)
    report.skipped = len(outcomes) - report.ran
    report.outcomes = outcomes
    for a in instances:
        progress.working("summarizing", a.name)
        t0 = time.perf_counter()
        mine = [o for o in outcomes if o.analyzer == a.name]
        results = [_load_result(_unit_json(options.out_dir, o), a.Result) for o in mine]
        report.unit_seconds[a.name] = [(r.provenance.get("seconds"), r.provenance.get("cache_seconds"))
                                       for r in results]
        summary = a.summarize(results, options.out_dir / a.name) if results else {}
        summary = {"analyzer": a.name, "units": len(results), "question": a.question, "method": a.method, **summary}
        if not results:
            summary["skipped"] = (f"nothing to analyse: it needs {a.requires}" if a.requires
                                  else "nothing to analyse in the selected checkpoints")
        atomic.write_text(options.out_dir / a.name / "summary.json", json.dumps(summary, indent=1))
        report.summaries[a.name] = summary
        report.summarize_s[a.name] = time.perf_counter() - t0
    return report


def _write_record(report: AnalysisReport, series: Series, refs: list[CheckpointRef], instances: list[Analyzer],
                  options: RunOptions, device: str, command: list[str] | None, started: float) -> None:
    """``run.json``: what produced these results, for the report's provenance (``interp.report.provenance``)."""
    from interp.report import provenance as P

    call = "interp.analyze() from Python; analyzers: " + ", ".join(a.name for a in instances)
    P.write_run_record(options.out_dir, {
        "command": P.command_line(command, call), "series": P.series_record(series, refs),
        "options": P.options_record(options), "analyzers": {a.name: a.config_dict() for a in instances},
        "versions": P.versions(), "device": P.device_info(options.device, device),
        "timings": P.timings(report.outcomes, report.unit_seconds, report.summarize_s),
        "wall_s": round(time.perf_counter() - started, 2)})


def _unit_json(out_dir: Path, o: UnitOutcome) -> Path:
    from interp.results import unit_paths

    return unit_paths(out_dir, o.analyzer, o.unit_id)[1]


def load_result(path: str | Path) -> Result:
    """The typed result saved at ``path`` (its .json or .h5): the class is the registered analyzer's own, never
    one a file names."""
    result = _load_result(Path(path))
    try:
        cls = registry.get(result.analyzer).Result
    except ConfigError:   # an analyzer this installation does not have: the plain Result still holds everything
        return result
    return cls(**{k: getattr(result, k) for k in ("analyzer", "unit_id", "config", "arrays", "dims", "scalars",
                                                    "provenance")})


def init_manifest(directory: str | Path, out: str | Path | None = None, force: bool = False) -> tuple[Path, Any]:
    """Scan ``directory`` (any recognised layout), write a manifest with every checkpoint's format, size and
    sha256 (paths relative to the manifest's folder), and return (its path, the scan: ``found`` / ``unclassified``).
    An existing file is kept unless ``force``."""
    import os

    from interp.formats.discovery import scan
    from interp.manifest import manifest_from_scan, save_manifest

    directory = Path(directory)
    if not directory.is_dir():
        raise ManifestError(f"{directory}: not a folder")
    out = Path(out) if out is not None else directory / "manifest.yaml"
    if out.exists() and not force:
        raise ManifestError(f"{out} exists; pass --force to replace it, or --out another file")
    result = scan(directory)
    if not result.found:
        raise ManifestError(f"{directory}: no checkpoint in a layout interp recognises"
                            + "".join(f"\n  {p}: {why}" for p, why in result.unclassified[:20]))
    manifest = manifest_from_scan(result, out.resolve().parent)
    outside = [c.path for r in manifest.runs for c in r.checkpoints if c.path.startswith(".." + os.sep)]
    save_manifest(manifest, out)
    if outside:
        result.unclassified.append((str(out), f"{len(outside)} paths lie outside the manifest's folder: analyze "
                                               f"it with --allow-outside-paths, or write it inside {directory}"))
    return out, result
