"""Options are validated where they are declared, so the CLI, the Python API and a config file read back from JSON
all get the same checks and the same error type."""

import dataclasses
import json
from pathlib import Path
from typing import Literal

import pytest

from interp.analyzers import registry
from interp.config import Options, option
from interp.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Demo(Options):
    mass: float = option(0.9, gt=0, le=1)
    rows: int = option(8, ge=1)
    kind: Literal["a", "b"] = "a"
    names: tuple[str, ...] = ()
    path: Path | None = None
    flag: bool = False


@pytest.mark.parametrize("kw, message", [
    ({"mass": 2.0}, "Demo.mass = 2.0: must be <= 1 (valid: 0 < mass <= 1)"),
    ({"mass": 0.0}, "must be > 0"),
    ({"mass": float("nan")}, "not NaN"),
    ({"mass": "x"}, "expected a number"),
    ({"rows": 0}, "Demo.rows = 0: must be >= 1"),
    ({"rows": 2.5}, "expected an integer"),
    ({"rows": True}, "expected an integer"),
    ({"kind": "c"}, "must be 'a' or 'b'"),
    ({"names": "abc"}, "expected a list of a string"),
    ({"flag": "yes"}, "expected true or false"),
])
def test_bad_values_name_the_option_and_what_is_valid(kw, message):
    with pytest.raises(ConfigError) as e:
        Demo(**kw)
    assert message in str(e.value)


def test_values_are_normalised():
    d = Demo(mass=1, names=["x", "y"], path="a/b")
    assert d.mass == 1.0 and isinstance(d.mass, float) and d.names == ("x", "y") and d.path == Path("a/b")


def test_overrides_from_strings():
    d = Demo.from_overrides({"mass": "0.5", "rows": "3", "kind": "b", "names": "x,y", "path": "none",
                             "flag": "true"})
    assert (d.mass, d.rows, d.kind, d.names, d.path, d.flag) == (0.5, 3, "b", ("x", "y"), None, True)
    with pytest.raises(ConfigError, match="no option 'mas'.*Did you mean 'mass'"):
        Demo.from_overrides({"mas": "1"})
    with pytest.raises(ConfigError, match="expected an integer"):
        Demo.from_overrides({"rows": "three"})


@pytest.mark.parametrize("name", registry.names())
def test_every_analyzer_config_round_trips_and_names_itself_in_errors(name):
    cls = registry.get(name)
    cfg = cls.Config()
    assert cls.config_from(json.loads(json.dumps(cls(cfg).config_dict()))) == cfg
    numeric = [f for f in dataclasses.fields(cls.Config) if f.metadata.get("ge") is not None
               or f.metadata.get("gt") is not None]
    for f in numeric:
        with pytest.raises(ConfigError) as e:
            cls.config_from({f.name: -1e9})
        assert f"analyzer {name!r} option {f.name}" in str(e.value)
