"""What the CLI and users call: ``load_series``, ``analyze``, ``load_result``, ``init_manifest``.

``analyze`` validates everything before computing anything (options, the manifest, every planned checkpoint's
bytes against its sha256), plans (analyzer, unit) pairs (``interp.runner.plan``), skips the ones already complete
*for the same inputs*, and runs the rest checkpoint by checkpoint (``interp.runner.run``): for each checkpoint it
caches the union of every pending analyzer's hooks in one forward pass, runs the checkpoint-scope units, and moves
on (the model slot holds one model); units over all seeds of a step run after their seeds are cached. Then each
analyzer summarizes exactly the units of this run (headline numbers, figures), and the report is written.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from interp.analyzers import registry
from interp.analyzers.base import Analyzer
from interp.checkpoints.manifest import Series, bundled_manifest, discover, load_manifest
from interp.errors import ConfigError, ManifestError
from interp.results import Result
from interp.results import load_result as _load_result
from interp.runner.options import RunOptions
from interp.runner.run import AnalysisReport

__all__ = ["AnalysisReport", "RunOptions", "analyze", "bundled_manifest", "init_manifest", "load_result",
           "load_series", "verifier_for"]


def load_series(source: str | Path | Series | None = None, allow_outside_paths: bool = False) -> Series:
    """A series from a manifest file, a checkpoint directory, or (None) the tiny series bundled with interp.
    Paths the manifest names must lie inside its folder unless ``allow_outside_paths``."""
    if isinstance(source, Series):
        return source
    if source is None:
        return load_manifest(bundled_manifest())
    p = Path(source)
    return discover(p, allow_outside_paths) if p.is_dir() else load_manifest(p, allow_outside_paths)


def analyzers_for(names: list[str] | None, settings: dict[str, dict[str, Any]] | None) -> list[Analyzer]:
    """The analyzers of one call, resolved once: every registered one when ``names`` is None, and those the named
    ones read (``Analyzer.reads``); ``settings`` maps analyzer name -> config overrides (validated: unknown keys list
    the valid ones)."""
    names = names or registry.names()
    settings = settings or {}
    wanted = set(names) | {m for n in names for m in registry.get(n).reads}
    for n in settings:
        if n not in wanted:
            raise ConfigError(f"settings given for analyzer {n!r}, which is not being run ({names})")
    classes = {n: registry.get(n) for n in names}
    for n in list(classes):   # what an analyzer reads from another's results runs too, in an earlier stage
        for m in classes[n].reads:
            classes.setdefault(m, registry.get(m))
    return [cls(cls.config_from(settings.get(n, {}))) for n, cls in classes.items()]


def verifier_for(options: RunOptions):
    """The process's verifier, remembering verified hashes in the cache folder across runs."""
    from interp.trust.hashes import Verifier

    return Verifier.default(options.cache_root / "verified-hashes.json")


def local_share(options: RunOptions) -> RunOptions:
    """The options with this machine's cores shared out: worker processes (``workers``; a local Dask cluster has 2)
    and torch threads for each (``threads``). Left to the cluster when units run on an existing scheduler."""
    from interp.checkpoints.loading import resolve_device
    from interp.runner import threads

    if options.dask_address is not None:
        return options
    workers = options.workers
    if workers is None:
        workers = 1 if options.dask or resolve_device(options.device) != "cpu" else min(4, threads.usable_cores())
    n = 2 if options.dask else workers
    return dataclasses.replace(options, workers=workers, threads=options.threads or threads.threads_for(n))


# Spawning a worker process imports torch and TransformerLens (about 5 s on 2 cores): a tiny series' neuron-stats
# took 5.7 s on two workers and 0.56 s in this process. Below this much estimated work, and on models this small
# (the estimate leaves out some analyzers' own passes, which a small model keeps small), one process runs everything.
SMALL_RUN_FLOPS = 5e10
SMALL_MODEL_PARAMS = 1_000_000


def too_small_for_workers(plan: Any, cost: dict[str, Any]) -> bool:
    """Whether starting worker processes would cost more than the run's own work (when ``workers`` is not set)."""
    from interp.runner.estimate import n_params

    biggest = max((n_params(r.model) for r in plan.refs), default=0)
    return cost["TOTAL"].flops < SMALL_RUN_FLOPS and biggest < SMALL_MODEL_PARAMS


def check_input_files(options: RunOptions, refs: list) -> None:
    """Read and validate every task and concepts file the run names (options and manifest) before anything is
    computed: a bad line is one error naming the file and line, not a failure in the middle of a series."""
    from interp.prompts.concepts import read_concepts
    from interp.prompts.task_file import read_task_file

    tasks = {options.tasks} | {r.inputs["tasks"] for r in refs if "tasks" in r.inputs and options.tasks is None}
    concepts = {options.concepts} | {r.inputs["concepts"] for r in refs
                                     if "concepts" in r.inputs and options.concepts is None}
    for path in sorted(str(p) for p in tasks if p is not None):
        read_task_file(Path(path))
    for path in sorted(str(p) for p in concepts if p is not None):
        read_concepts(Path(path))


def plan_run(source: str | Path | Series | None = None, analyzers: list[str] | None = None,
             settings: dict[str, dict[str, Any]] | None = None, options: RunOptions = RunOptions()):
    """(the plan, its cost estimate per analyzer: ``interp.runner.estimate``), computing nothing but prompt sets."""
    from interp.checkpoints.loading import resolve_device
    from interp.runner import plan as planning
    from interp.runner.context import Context
    from interp.runner.estimate import estimate

    instances = analyzers_for(analyzers, settings)
    series = load_series(source)
    refs = planning.select_refs(series, options.runs)
    check_input_files(options, refs)
    ctx = Context.shared(options.context_settings(resolve_device(options.device)))
    try:
        plan = planning.plan(refs, instances, options, {r.id: ctx.available(r) for r in refs})
        return plan, estimate(plan, ctx, options.storage_dtype)
    finally:
        Context.close_shared()


def analyze(source: str | Path | Series | None = None, analyzers: list[str] | None = None,
            settings: dict[str, dict[str, Any]] | None = None, options: RunOptions = RunOptions(),
            executor: Any = None, command: list[str] | None = None) -> AnalysisReport:
    """Run analyzers over a series and write results under ``options.out_dir``; returns headline summaries.

    ``settings`` maps analyzer name -> config overrides. ``executor``: where jobs run (default: chosen from
    ``options``, see ``interp.runner.executors.executor_for``). ``command``: the command line that asked for this
    (the CLI passes it), recorded in ``run.json`` for the report.
    """

    from interp.checkpoints.loading import resolve_device
    from interp.report.build import write_report
    from interp.runner import plan as planning
    from interp.runner.context import Context
    from interp.runner.estimate import estimate, stage_peaks
    from interp.runner.executors import executor_for
    from interp.runner.run import execute, write_record
    from interp.trust import atomic

    started = time.perf_counter()
    asked, options = options, local_share(options)
    instances = analyzers_for(analyzers, settings)
    device = resolve_device(options.device)
    series = load_series(source)
    verifier = verifier_for(options)
    refs = planning.select_refs(series, options.runs)
    check_input_files(options, refs)
    ctx = Context.shared(options.context_settings(device))
    available = {r.id: ctx.available(r) for r in refs}
    plan = planning.plan(refs, instances, options, available)
    cost = estimate(plan, ctx, options.storage_dtype)
    if asked.workers is None and (options.workers or 1) > 1 and too_small_for_workers(plan, cost):
        options = local_share(dataclasses.replace(asked, workers=1))
        plan = planning.plan(refs, instances, options, available)
    if options.disk_budget_gb is not None:
        need = cost["TOTAL"].disk_bytes
        if need > options.disk_budget_gb * 2**30:
            raise ConfigError(f"this run would write about {need / 2**30:.2f} GB of activations to the cache, more "
                              f"than --disk-budget {options.disk_budget_gb:g} GB; see `interp plan` for each "
                              f"analyzer's share, fewer tokens (--max-tokens) or another --storage-dtype")
    peaks = stage_peaks(plan, ctx, options.storage_dtype)
    plan = plan.verified(verifier, options.progress)
    for folder in (options.out_dir, options.cache_root):
        atomic.sweep_temporaries(folder)
    own = executor is None
    executor = executor or executor_for(options, options.progress)
    try:
        report = execute(plan, instances, options, executor, peaks)
    finally:
        verifier.save()
        if own:
            executor.close()
    report.cache_bytes, report.cache_kept = clean_cache(options)
    write_record(report, series, plan.refs, instances, options, device, command, started)
    report.index = write_report(options.out_dir, workers=options.workers or 1)
    return report


def clean_cache(options: RunOptions) -> tuple[int, bool]:
    """(bytes of activations the cache holds, whether they are kept): removed unless ``keep_cache``. The memo of
    verified checkpoint hashes stays: it saves rehashing the next run's checkpoints."""
    import shutil

    root = options.cache_root
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "verified-hashes.json"] if root.is_dir() else []
    total = sum(p.stat().st_size for p in files)
    # a cache folder the user named may be shared with other runs (a cluster's): only the run's own is removed
    if options.keep_cache or options.cache_dir is not None or not files:
        return total, bool(files)
    for child in root.iterdir():
        if child.name != "verified-hashes.json":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    return total, False


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

    from interp.checkpoints.discovery import scan
    from interp.checkpoints.manifest import manifest_from_scan, save_manifest

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
