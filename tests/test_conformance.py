"""One conformance check over every registered analyzer (shared/DESIGN.md): config JSON round trip, hooks exist
on the bundled model, determinism, save -> load identical."""

import dataclasses
import json

import pytest

from interp.activations.cache import CacheSettings, check_hooks
from interp.analyzers import registry
from interp.analyzers.base import Scope, Unit
from interp.context import Context, ContextSettings
from interp.prompts import PromptSource
from interp.loading import SLOT
from interp.api import load_result
from interp.results import save_result


@pytest.mark.parametrize("name", registry.names())
def test_analyzer_conformance(name, bundled, tmp_path):
    cls = registry.get(name)
    analyzer = cls()
    assert analyzer.name == name and analyzer.description
    cfg = analyzer.config_dict()
    assert cls.config_from(json.loads(json.dumps(cfg))) == analyzer.config
    assert dataclasses.is_dataclass(cls.Config)

    chosen = analyzer.select(bundled.refs())
    assert chosen, "the analyzer selects nothing in the bundled series"
    run = "wide" if any(r.run == "wide" for r in chosen) else chosen[0].run
    last = max(r.step for r in chosen if r.run == run)
    needs = analyzer.needs(chosen[0])
    refs = tuple(r for r in chosen if r.run == run and r.step == last)
    if needs.scope is not Scope.SEEDS:
        refs = refs[:1]
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu", PromptSource(n_background=64)))
    check_hooks(ctx.model(refs[0]).hook_dict, needs.hooks + needs.grad_hooks)
    for ref in refs:
        ctx.ensure(ref, analyzer.needs(ref))
    unit = Unit(name, refs)
    first, second = analyzer.run(unit, ctx), cls(cls.config_from(cfg)).run(unit, ctx)
    assert first.equals(second), "not deterministic"
    back = load_result(save_result(first, tmp_path / "out"))
    assert back.equals(first) and type(back) is type(first)
    SLOT.clear()


def test_registry_errors_list_valid_names():
    from interp.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        registry.get("neuron-stat")
    assert "neuron-stats" in str(e.value)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("neuron-stats", "x:Y", "dup")
