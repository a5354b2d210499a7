"""The analyzer contract.

An analyzer module holds a frozen ``Config`` (an ``interp.config.Options``: validated on construction), optionally a
``Result`` subclass with typed accessors, and the analyzer class. Like a scikit-learn estimator, the constructor only
stores the config.

- ``needs(ref)`` declares hooks (and hooks whose loss gradients it wants) and its scope, so the runner caches every
  activation once for all analyzers that want it;
- ``select(refs)`` says which checkpoints it applies to (default: all);
- ``run(unit, ctx)`` streams over cached chunks with accumulators (float64 where sums are long) and returns a
  ``Result``; it is deterministic: the same unit gives the same Result, and it keeps no state between units
  (per-run memos live in the ``Context``, keyed by what they depend on);
- ``summarize(results, out_dir)`` (optional) turns a series of unit results into series-level headline rows
  (``interp.report.headline``) and figure specs (``interp.report.figures``: data and captions, never drawing; the
  report renders them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from interp.config import Options
from interp.results import Result

if TYPE_CHECKING:
    from interp.context import Context
    from interp.manifest import CheckpointRef


class Scope(str, Enum):
    CHECKPOINT = "checkpoint"   # one checkpoint
    SEEDS = "seeds"             # all seeds of a run at one step


@dataclass(frozen=True)
class Needs:
    """What the runner must have cached before ``run``: activations of ``hooks``, and activations plus loss
    gradients of ``grad_hooks``. Analyzers that use the model itself ask the context for it (``ctx.model``)."""

    hooks: tuple[str, ...] = ()
    grad_hooks: tuple[str, ...] = ()
    scope: Scope = Scope.CHECKPOINT


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: an analyzer on a checkpoint (or on a group of seeds)."""

    analyzer: str
    refs: tuple[CheckpointRef, ...]

    @property
    def id(self) -> str:
        r = self.refs[0]
        return r.id if len(self.refs) == 1 else f"{r.run}/step{r.step}"


class Analyzer(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # for the report (stored in the summary, so ``interp report`` needs no analyzer): the question the analyzer
    # answers, in a sentence, and a short paragraph of method and caveats
    question: ClassVar[str] = ""
    method: ClassVar[str] = ""
    Config: ClassVar[type[Options]]
    Result: ClassVar[type[Result]] = Result
    # what ``select`` requires of a checkpoint, said when it selects nothing (e.g. "runs with tasks in their mixture")
    requires: ClassVar[str] = ""
    # bumped when a change to the method alters the numbers a unit produces: part of the unit key, so results an
    # older interp saved are recomputed, not served
    version: ClassVar[int] = 1

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "name" in cls.__dict__ and "Config" in cls.__dict__:
            cls.Config.label = f"analyzer {cls.name!r}"     # so option errors name the analyzer

    def __init__(self, config: Options | None = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def config_from(cls, overrides: dict[str, Any]) -> Options:
        """A validated config from typed values or ``--set`` strings; errors name the analyzer and option."""
        return cls.Config.from_overrides(overrides)

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_json()

    def input_digests(self) -> dict[str, str]:
        """sha256 of every file the analyzer reads besides checkpoints and prompts (e.g. a choices file named in its
        config): part of a unit's key, so editing such a file recomputes instead of serving a stale result."""
        return {}

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
        """Series-level ``headline`` rows and ``figures`` specs (plus any tables the analyzer keeps); default: none."""
        return {}
