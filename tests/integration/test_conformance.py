"""One conformance check over every registered analyzer (``interp.analyzers.checks.check_analyzer``: config JSON
round trip, hooks exist on the bundled model, determinism, save -> load identical, a JSON summary), and the same
check on the minimal analyzer that ``interp/analyzers/README.md`` shows, registered from outside the package."""

import importlib
import re
import sys
from pathlib import Path

import pytest

from interp.analyzers import registry
from interp.analyzers.checks import check_analyzer


@pytest.mark.parametrize("name", registry.names())
def test_analyzer_conformance(name, tmp_path):
    check_analyzer(registry.get(name), tmp_path)
    assert registry.describe()[name] and registry.get(name).method(), "a description and a method text"


def test_the_readme_example_analyzer_is_one_folder_plus_one_registry_line(tmp_path, monkeypatch):
    text = (Path(registry.__file__).with_name("README.md")).read_text()
    blocks = re.findall(r"```python\n(# interp/analyzers/mean_activation/(\w+)\.py\n.*?)```", text, re.S)
    assert {name for _, name in blocks} == {"analyzer", "summary"}
    pkg = tmp_path / "example_plugin" / "mean_activation"
    pkg.mkdir(parents=True)
    for name in ("__init__", "../__init__"):
        (pkg / f"{name}.py").write_text("")
    for code, name in blocks:
        (pkg / f"{name}.py").write_text(code)
    (pkg / "method.md").write_text("The mean of each neuron's activation over every prompt token.")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("mean-activation", "example_plugin.mean_activation.analyzer:MeanActivation", "example")
    try:
        cls = registry.get("mean-activation")
        result = check_analyzer(cls, tmp_path / "check")
        assert result.arrays["mean"].shape == (256,) and (result.arrays["mean"] >= 0).all()   # ReLU: wide d_mlp 256
        summary = cls().summarize([result], {})
        assert summary["per_run"]["wide"]["3000"]["mean_over_neurons"]["mean"] == pytest.approx(
            float(result.arrays["mean"].mean()))
    finally:
        registry._table().pop("mean-activation", None)
        for m in [m for m in sys.modules if m.startswith("example_plugin")]:
            del sys.modules[m]
        importlib.invalidate_caches()


def test_registry_errors_list_valid_names():
    from interp.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        registry.get("neuron-stat")
    assert "neuron-stats" in str(e.value)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("neuron-stats", "x:Y", "dup")
