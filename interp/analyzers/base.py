"""The analyzer contract.

An analyzer module holds a frozen ``Config`` dataclass, a ``Result`` subclass and the analyzer class. Like a
scikit-learn estimator, the constructor only stores the config; validation happens when it sees checkpoints.

- ``needs(ref)`` declares hooks (and hooks whose loss gradients it wants) and its scope, so the runner caches every
  activation once for all analyzers that want it;
- ``run(unit, ctx)`` streams over cached chunks with accumulators (float64 where sums are long) and returns a
  ``Result``; it is deterministic: the same unit gives the same Result;
- ``summarize(results, out_dir)`` (optional) turns a series of unit results into series-level headline numbers
  and figures.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from interp.errors import ConfigError, suggest

if TYPE_CHECKING:
    from interp.context import Context
    from interp.manifest import CheckpointRef


class Scope(str, Enum):
    CHECKPOINT = "checkpoint"   # one checkpoint
    SEEDS = "seeds"             # all seeds of a run at one step


@dataclass(frozen=True)
class Needs:
    hooks: tuple[str, ...] = ()
    grad_hooks: tuple[str, ...] = ()
    scope: Scope = Scope.CHECKPOINT
    model: bool = False  # needs the model itself (weights, ablations, gradients of parameters)


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: an analyzer on a checkpoint (or on a group of seeds)."""

    analyzer: str
    refs: tuple[CheckpointRef, ...]

    @property
    def id(self) -> str:
        r = self.refs[0]
        return r.id if len(self.refs) == 1 else f"{r.run}/step{r.step}"


@dataclass
class Result:
    """Arrays with named dimensions plus JSON-able scalars. Subclasses add typed accessors."""

    analyzer: str
    unit_id: str
    config: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scalars: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, array: Any, dims: tuple[str, ...]) -> None:
        arr = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
        if arr.ndim != len(dims):
            raise ValueError(f"array {name!r} has {arr.ndim} dims, named {dims}")
        self.arrays[name], self.dims[name] = arr, tuple(dims)

    def equals(self, other: Result) -> bool:
        """Bit-for-bit equality of arrays (NaN equal to NaN) and equality of everything else."""
        if (self.analyzer, self.unit_id, self.config, self.dims) != (other.analyzer, other.unit_id, other.config,
                                                                       other.dims):
            return False
        if json.dumps(self.scalars, sort_keys=True) != json.dumps(other.scalars, sort_keys=True):
            return False
        return set(self.arrays) == set(other.arrays) and all(
            a.dtype == other.arrays[k].dtype and a.shape == other.arrays[k].shape
            and np.array_equal(a, other.arrays[k], equal_nan=a.dtype.kind == "f")
            for k, a in self.arrays.items())


class Analyzer(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type]
    Result: ClassVar[type[Result]] = Result

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def config_from(cls, overrides: dict[str, Any]) -> Any:
        """A config from string or typed overrides (``--set key=value``); unknown keys list the valid ones."""
        fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        typed = {}
        for k, v in overrides.items():
            if k not in fields:
                raise ConfigError(f"analyzer {cls.name!r} has no setting {k!r}; valid: {sorted(fields)}."
                                  + suggest(k, fields))
            typed[k] = _coerce(v, getattr(cls.Config(), k), k, cls.name)
        return cls.Config(**typed)

    def config_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self.config)))

    @abstractmethod
    def needs(self, ref: CheckpointRef) -> Needs: ...

    def select(self, refs: list[CheckpointRef]) -> list[CheckpointRef]:
        """The checkpoints this analyzer applies to (default: all); e.g. only runs with a certain task, or only
        the last step when the analysis is expensive."""
        return refs

    @abstractmethod
    def run(self, unit: Unit, ctx: Context) -> Result: ...

    def new_result(self, unit: Unit) -> Result:
        return self.Result(analyzer=self.name, unit_id=unit.id, config=self.config_dict(),
                           provenance={"checkpoints": [r.provenance() for r in unit.refs]})

    def summarize(self, results: list[Result], out_dir: Path) -> dict[str, Any]:
        """Series-level headline numbers (and figures written under ``out_dir``); default: none."""
        return {}


def mlp_hooks(ref: CheckpointRef, name: str = "hook_post") -> tuple[str, ...]:
    """``blocks.{l}.mlp.<name>`` for every layer of the checkpoint's model."""
    return tuple(f"blocks.{l}.mlp.{name}" for l in range(int(ref.model.get("n_layers", 0))))


def by_run_step(results: list[Result]) -> dict[str, dict[int, list[Result]]]:
    """Results grouped by run, then step (each list holds one result per seed or seed group)."""
    out: dict[str, dict[int, list[Result]]] = {}
    for r in results:
        ck = r.provenance["checkpoints"][0]
        out.setdefault(ck["run"], {}).setdefault(int(ck["step"]), []).append(r)
    return {run: dict(sorted(steps.items())) for run, steps in sorted(out.items())}


def _coerce(value: Any, default: Any, key: str, analyzer: str) -> Any:
    if isinstance(default, tuple) and isinstance(value, list):   # a config read back from JSON
        return tuple(value)
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            return tuple(json.loads(value)) if value.startswith("[") else tuple(
                type(default[0])(x) if default else x for x in value.split(","))
        if default is None:
            return json.loads(value)
    except (ValueError, json.JSONDecodeError) as e:
        raise ConfigError(f"analyzer {analyzer!r}: setting {key}={value!r} is not a valid "
                          f"{type(default).__name__}") from e
    return value
