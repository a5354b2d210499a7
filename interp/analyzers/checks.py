"""``check_analyzer``: the conformance check every built-in analyzer passes, for yours too.

    >>> from interp.analyzers.checks import check_analyzer
    >>> check_analyzer(MyAnalyzer, work_dir="check-work")      # doctest: +SKIP

It builds the analyzer from its default config, checks that the config survives a JSON round trip and that the
analyzer selects something in the series (the tiny bundled one by default), caches what it needs on that series'
last checkpoint (every seed of it for a seeds-scope analyzer; for a run-scope one, every seed at the run's last two
steps, after the analyzers it reads have run there), checks that its hooks exist on the model, runs the
unit twice from two fresh instances (the results must be equal: no hidden state, no unseeded randomness), saves
the result and loads it back (equal again, and of the analyzer's own ``Result`` class), and summarizes it. Any
failure raises ``AssertionError`` with the reason.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.analyzers.base import Analyzer, Scope, Unit

if TYPE_CHECKING:
    from interp.checkpoints.manifest import Series
    from interp.results import Result


def check_analyzer(cls: type[Analyzer], work_dir: str | Path, series: Series | None = None,
                   run: str | None = None) -> Result:
    """Raise ``AssertionError`` unless ``cls`` keeps the analyzer contract (see the module doc); return the unit
    result it made. ``run``: the run to check it on (default: the first the analyzer selects, ``wide`` when it
    selects the bundled series' wide run)."""
    from interp.activations.cache import CacheSettings, check_hooks
    from interp.checkpoints.loading import SLOT
    from interp.checkpoints.manifest import bundled_manifest, load_manifest
    from interp.prompts.source import PromptSource
    from interp.results import load_result, save_result
    from interp.runner.context import Context, ContextSettings

    work_dir = Path(work_dir)
    analyzer = cls()
    assert isinstance(analyzer, Analyzer) and analyzer.name, f"{cls.__name__}: not an Analyzer with a name"
    assert dataclasses.is_dataclass(cls.Config), f"{cls.name}: Config must be a dataclass"
    cfg = analyzer.config_dict()
    assert cls.config_from(json.loads(json.dumps(cfg))) == analyzer.config, f"{cls.name}: config JSON round trip"
    from interp.runner.plan import selection

    series = series if series is not None else load_manifest(bundled_manifest())
    ctx = Context(ContextSettings(CacheSettings(work_dir / "cache"), "cpu", PromptSource(n_background=64)))
    refs_all = series.refs()
    chosen = selection(refs_all, analyzer, {r.id: ctx.available(r) for r in refs_all})
    assert chosen, f"{cls.name}: selects nothing in {series.source or series.root}"
    runs = [r.run for r in chosen]
    run = run or ("wide" if "wide" in runs else runs[0])
    last = max(r.step for r in chosen if r.run == run)
    refs = tuple(r for r in chosen if r.run == run and r.step == last)
    refs = refs if analyzer.scope is Scope.SEEDS else refs[:1]
    upstream: dict = {}
    if analyzer.scope is Scope.RUN:   # the run's last two shared steps, after the analyzers it reads ran on them
        from interp.runner.plan import series_groups

        group = next(g for g in series_groups(chosen) if g[0].run == run)
        steps = sorted({r.step for r in group})[-2:]
        refs = tuple(r for r in group if r.step in steps)
        upstream = _upstream(analyzer, refs, ctx, work_dir / "upstream")
    try:
        needs = analyzer.needs(refs[0])
        needs = list(needs) if isinstance(needs, (list, tuple)) else [needs]
        check_hooks(ctx.model(refs[0]).hook_dict, [h for n in needs for h in n.hooks + n.grad_hooks],
                    f"checkpoint {refs[0].id}")
        for ref in refs:
            ctx.ensure(ref, analyzer.needs(ref))
        unit = Unit(cls.name, refs, upstream)
        first, second = analyzer.run(unit, ctx), cls(cls.config_from(cfg)).run(unit, ctx)
    finally:
        SLOT.clear()
    assert type(first) is cls.Result, f"{cls.name}: run() returned {type(first).__name__}, not {cls.Result.__name__}"
    assert first.equals(second), f"{cls.name}: two runs of the same unit differ (hidden state or unseeded randomness)"
    back = load_result(save_result(first, work_dir / "out"), cls.Result)
    assert back.equals(first) and type(back) is type(first), f"{cls.name}: save -> load changed the result"
    summary: Any = analyzer.summarize([back], {})
    assert isinstance(summary, dict), f"{cls.name}: summarize returned {type(summary).__name__}, not a dict"
    json.dumps(summary)   # the summary is written as JSON
    return first


def _upstream(analyzer: Analyzer, refs: tuple, ctx: Any, out: Path) -> dict:
    """Run every analyzer ``analyzer`` reads on ``refs`` (its default config), save the results under ``out``, and
    hand them back as the runner would (``Unit.upstream``)."""
    from interp.analyzers import registry
    from interp.results import save_result
    from interp.runner.run import upstream_results

    for name in analyzer.reads:
        other = registry.get(name)()
        units = ([(r,) for r in refs] if other.scope is Scope.CHECKPOINT else
                 [tuple(r for r in refs if r.step == s) for s in sorted({r.step for r in refs})])
        for unit_refs in units:
            for ref in unit_refs:
                ctx.ensure(ref, other.needs(ref))
            result = other.run(Unit(name, unit_refs), ctx)
            result.provenance["unit_key"] = f"check-{name}-{unit_refs[0].step}"
            save_result(result, out)
    return upstream_results(analyzer, refs, out)
