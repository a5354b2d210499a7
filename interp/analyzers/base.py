"""The analyzer contract.

An analyzer is a folder of ``interp/analyzers/`` (see ``README.md`` there): ``analyzer.py`` holds a frozen ``Config``
(an ``interp.config.Options``: validated on construction), optionally a ``Result`` subclass with typed accessors, and
the analyzer class; ``summary.py`` turns a series of unit results into headline rows and figure specs; ``method.md``
says what it computes, the choices that are ours, and its caveats (the report page shows it). Like a scikit-learn
estimator, the constructor only stores the config.

- ``scope`` (a class constant): one checkpoint, every seed of a run at one step, or every seed and step of a run;
- ``needs(ref)`` declares hooks (and hooks whose loss gradients it wants), so the runner caches every activation
  once for all analyzers that want it;
- ``select(refs)`` says which checkpoints it applies to (default: all);
- ``run(unit, ctx)`` streams over cached chunks with accumulators (float64 where sums are long) and returns a
  ``Result``; it is deterministic: the same unit gives the same Result, and it keeps no state between units
  (per-run memos live in the ``Context``, keyed by what they depend on);
- ``summarize(results, uses)`` (``summary.py``'s ``summarize``) turns this run's unit results into series-level
  headline rows (``interp.report.headline``) and figure specs (``interp.report.figures``: data and captions, never
  drawing); ``uses`` holds the results of the analyzers named in ``uses``, made from the same checkpoints and
  prompts, handed in by the runner.
"""

from __future__ import annotations

import importlib
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from interp.config import Options
from interp.results import Result, run_unit_id, unit_id
from interp.runner.context import Needs

if TYPE_CHECKING:
    from interp.checkpoints.manifest import CheckpointRef
    from interp.runner.context import Context


class Scope(str, Enum):
    CHECKPOINT = "checkpoint"   # one checkpoint
    SEEDS = "seeds"             # all seeds of a run at one step
    RUN = "run"                 # all seeds of a run at every step they share (a series: lineage over training)


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: an analyzer on a checkpoint, on the seeds of a step, or on a run's series."""

    analyzer: str
    refs: tuple[CheckpointRef, ...]
    # the results of the analyzers named in ``Analyzer.reads`` over these checkpoints, handed in by the runner
    # (loaded from the earlier stage that made them): {analyzer: {unit id: Result}}
    upstream: dict[str, dict[str, Result]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        r = self.refs[0]
        if len(self.refs) == 1:
            return r.id
        return unit_id(r.run, r.step) if len({x.step for x in self.refs}) == 1 else run_unit_id(r.run)


class Analyzer(ABC):
    name: ClassVar[str]
    # the question the analyzer answers, in a sentence (the report's page leads with it; the method is method.md)
    question: ClassVar[str] = ""
    Config: ClassVar[type[Options]]
    Result: ClassVar[type[Result]] = Result
    scope: ClassVar[Scope] = Scope.CHECKPOINT
    # the inputs it reads (``interp.runner.context.INPUTS``): ``inputs`` it cannot run without (a checkpoint that
    # lacks one is not selected, and the skip message names the flag that supplies it), ``extra_inputs`` it uses when
    # the run has them (e.g. background text for a task analyzer); the digest of each read input is in the unit key
    inputs: ClassVar[tuple[str, ...]] = ("prompts",)
    extra_inputs: ClassVar[tuple[str, ...]] = ()
    inputs_any: ClassVar[tuple[str, ...]] = ()   # and at least one of these
    # what ``select`` requires of a checkpoint, and the flag or manifest field that supplies it: said when it
    # selects nothing (e.g. "runs with tasks in their mixture")
    requires: ClassVar[str] = ""
    # other analyzers whose results ``summarize`` joins with its own (handed in by the runner, same checkpoints and
    # prompts); they do not have to run in the same call: complete results on disk count
    uses: ClassVar[tuple[str, ...]] = ()
    # other analyzers whose unit results ``run`` reads (``Unit.upstream``): their units over the same checkpoints run
    # in an earlier stage of the same call (the plan adds them when they were not asked for), and their keys are
    # part of this analyzer's unit key, so a changed upstream result recomputes this one
    reads: ClassVar[tuple[str, ...]] = ()
    # the name of a seeds-scope analyzer whose own forward pass this checkpoint analyzer can ride (``tap``): when both
    # run on a seed group, one pass over the tokens serves them (neuron-stats on universal-neurons' lockstep pass)
    taps: ClassVar[str] = ""
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

    @classmethod
    def method(cls) -> str:
        """The method text (``method.md`` beside the analyzer's module; empty when there is none)."""
        return _method_text(sys.modules[cls.__module__].__file__)

    def input_digests(self) -> dict[str, str]:
        """sha256 of every file the analyzer reads besides checkpoints and prompts (e.g. a choices file named in its
        config): part of a unit's key, so editing such a file recomputes instead of serving a stale result."""
        return {}

    @abstractmethod
    def needs(self, ref: CheckpointRef) -> Needs: ...

    def own_work(self, refs: tuple[CheckpointRef, ...], tokens: int, params: int, tapped: bool = False
                 ) -> tuple[float, int]:
        """(FLOPs, peak bytes) of the work a unit over ``refs`` does beyond reading the cache: its own forward
        passes over ``tokens`` evaluation tokens of a model with ``params`` parameters, a sampler's steps
        (``interp plan``'s estimate; rules of thumb are fine). ``tapped``: it rides another analyzer's pass."""
        return 0.0, 0

    def select(self, refs: list[CheckpointRef]) -> list[CheckpointRef]:
        """The checkpoints this analyzer applies to (default: all); e.g. only runs with a certain task, or only
        the last step when the analysis is expensive."""
        return refs

    @abstractmethod
    def run(self, unit: Unit, ctx: Context) -> Result: ...

    def new_result(self, unit: Unit) -> Result:
        return self.Result(analyzer=self.name, unit_id=unit.id, config=self.config_dict(),
                           provenance={"checkpoints": [r.provenance() for r in unit.refs]})

    def summarize(self, results: list[Result], uses: dict[str, list[Result]]) -> dict[str, Any]:
        """Series-level ``headline`` rows and ``figures`` specs (plus any tables the analyzer keeps): the
        ``summarize(results, uses)`` of ``summary.py`` beside the analyzer's module; none without one."""
        package = type(self).__module__.rpartition(".")[0]
        try:
            module = importlib.import_module(f"{package}.summary")
        except ModuleNotFoundError as e:
            if e.name != f"{package}.summary":
                raise
            return {}
        return module.summarize(results, uses)


@cache
def _method_text(module_file: str) -> str:
    path = Path(module_file).with_name("method.md")
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""
