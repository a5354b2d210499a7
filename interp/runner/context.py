"""What an analyzer sees while it runs: prompts, the (one) loaded model, and the activation cache.

A ``Context`` lives as long as the process's share of one ``analyze`` call, not one job: jobs of every checkpoint
reuse it, so each prompt set is built (and a token file hashed) once, keyed by what it depends on
(``PromptSource.key``), and the model slot walks a series with one model's memory. ``Context.shared(settings)``
returns the process's context for those settings (a Dask worker process keeps its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from interp.activations.cache import ActivationCache, CacheSettings
from interp.activations.store import HookArray
from interp.errors import PromptError
from interp.prompts.source import PromptSource, check_prompts

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from interp.checkpoints.manifest import CheckpointRef
    from interp.prompts.concepts import ConceptSet
    from interp.prompts.prompt_set import PromptSet
    from interp.prompts.task_set import TaskSet
    from interp.prompts.text import Codec


# The inputs an analyzer can read, each a prompt set of its own (its own forward passes and cache files):
# "prompts": the evaluation prompts (a toy run's mixture or language; text or a token file for any series);
# "tasks": task prompts with answers (a toy run's mixture tasks, or a task file);
# "concepts": labelled prompts of cyclic concepts (a concepts file).
INPUTS = ("prompts", "tasks", "concepts")
# what supplies each input on a series that does not carry it, for the message of an analyzer that skips
SUPPLIED_BY = {"prompts": "--tokens FILE (text or token ids)", "tasks": "--tasks FILE (a task file)",
               "concepts": "--concepts FILE (a concepts file)"}


@dataclass(frozen=True)
class Needs:
    """What must be cached before an analyzer's ``run``, on the prompt set ``on`` (one of ``INPUTS``): activations
    of ``hooks``, and activations plus loss gradients of ``grad_hooks``. Analyzers that use the model itself ask the
    context for it (``ctx.model``)."""

    hooks: tuple[str, ...] = ()
    grad_hooks: tuple[str, ...] = ()
    on: str = "prompts"

    @staticmethod
    def union(needs: list[Needs]) -> list[Needs]:
        """One forward pass's worth per prompt set: every hook any of ``needs`` asks for on it."""
        out = []
        for on in INPUTS:
            mine = [n for n in needs if n.on == on]
            if mine:
                out.append(Needs(hooks=tuple(sorted({h for n in mine for h in n.hooks})),
                                 grad_hooks=tuple(sorted({h for n in mine for h in n.grad_hooks})), on=on))
        return out


@dataclass(frozen=True)
class ContextSettings:
    """Everything a context depends on (hashable: the key of the process's shared contexts)."""

    cache: CacheSettings
    device: str = "cpu"
    prompts: PromptSource = PromptSource()
    allow_pickle: bool = False
    progress: bool = False
    tasks: Path | None = None      # a task file (RunOptions.tasks)
    concepts: Path | None = None   # a concepts file (RunOptions.concepts)


class Context:
    """Models come from the process's single ``ModelSlot``: asking for another checkpoint's model replaces the
    current one (in place when the architecture is the same), so a process never holds two. Analyzers must leave
    the model as they found it (remove hooks, restore any weights they perturb)."""

    _shared: ClassVar[dict[tuple, Context]] = {}

    def __init__(self, settings: ContextSettings):
        self.settings = settings
        self.device = settings.device
        self.cache = ActivationCache(settings.cache, device=settings.device, progress=settings.progress)
        self._prompts: dict[tuple, PromptSet] = {}
        self._checked: set[tuple] = set()
        self._sets: dict[tuple, Any] = {}
        self._tap_requests: dict[str, list[tuple[str, Callable]]] = {}   # checkpoint id -> [(analyzer, factory)]
        self.taps_made: dict[tuple[str, str], Any] = {}                    # (analyzer, checkpoint id) -> tap

    @classmethod
    def shared(cls, settings: ContextSettings) -> Context:
        """This process's context for ``settings``, created on first use."""
        key = (settings, id(settings.prompts.fixed))   # fixed prompts compare by identity, not by value
        if key not in cls._shared:
            cls._shared[key] = cls(settings)
        return cls._shared[key]

    @classmethod
    def close_shared(cls) -> None:
        """Forget every shared context and release the model (the end of an ``analyze`` call)."""
        from interp.checkpoints.loading import SLOT

        cls._shared.clear()
        SLOT.clear()

    @property
    def batch_size(self) -> int:
        """Prompts per forward pass (``RunOptions.batch_size``) before the token cap: for inputs that set their own
        memory budget (a choices file's logits)."""
        return self.settings.cache.batch_size

    def batch_rows(self, prompts: PromptSet) -> int:
        """Prompts of ``prompts`` per forward pass (``RunOptions.batch_size`` capped by ``batch_tokens``), for
        analyzers that run the model themselves."""
        return self.settings.cache.rows_per_pass(prompts.tokens.shape[1])

    def source(self, ref: CheckpointRef) -> PromptSource:
        """The evaluation prompts' source for ``ref``: the run options', with the text and tokenizer the manifest
        names for ``ref``'s run where the options name none."""
        import dataclasses

        s, own = self.settings.prompts, ref.inputs
        if s.fixed is None and ((s.tokens_file is None and "tokens" in own) or (s.tokenizer is None
                                                                               and "tokenizer" in own)):
            s = dataclasses.replace(s, tokens_file=s.tokens_file or own.get("tokens"),
                                    tokenizer=s.tokenizer or own.get("tokenizer"))
        return s

    def _file(self, ref: CheckpointRef, kind: str) -> Path | None:
        """The task or concepts file for ``ref``: the run options' (they override), else the manifest's."""
        given = self.settings.tasks if kind == "tasks" else self.settings.concepts
        return given if given is not None else ref.inputs.get(kind)

    def prompts(self, ref: CheckpointRef, source: PromptSource | None = None) -> PromptSet:
        """The prompts ``ref`` is evaluated on (``source``: another set, e.g. a training split), built once."""
        source = source or self.source(ref)
        key = source.key(ref)
        if key not in self._prompts:
            self._prompts[key] = source.build(ref, self.settings.cache.root)
        checked = (key, ref.model.get("d_vocab"), ref.model.get("n_ctx"))
        if checked not in self._checked:
            check_prompts(self._prompts[key], ref.model, f"{source.describe(ref)} (checkpoint {ref.id})")
            self._checked.add(checked)
        return self._prompts[key]

    def available(self, ref: CheckpointRef) -> set[str]:
        """Which ``INPUTS`` this run offers for ``ref``: known without building anything."""
        from interp.toys.tasks import find_task

        spec, src = ref.mixture_spec, self.source(ref)
        out = set()
        if src.tokens_file is not None or src.fixed is not None or spec is not None or ref.language:
            out.add("prompts")
        fixed_tasks = src.fixed is not None and bool((src.fixed.task_id >= 0).any())
        if self._file(ref, "tasks") is not None or (spec is not None and spec.tasks) or fixed_tasks:
            out.add("tasks")
        if self._file(ref, "concepts") is not None or find_task(spec, "modular_addition") is not None:
            out.add("concepts")   # a concepts file, or a toy run's modular-addition task as a concept
        return out

    def codec(self, ref: CheckpointRef) -> Codec:
        """The checkpoint's tokenizer (``--tokenizer`` when given), for text-defined inputs."""
        from interp.prompts.text import codec, find_tokenizer

        return codec(find_tokenizer(ref.path, ref.format, self.source(ref).tokenizer))

    def _shape(self, ref: CheckpointRef) -> tuple[int, int]:
        """(n_ctx, d_vocab) of the model, from the manifest's architecture (the model is loaded only without)."""
        n_ctx, d_vocab = ref.model.get("n_ctx"), ref.model.get("d_vocab")
        if n_ctx is None or d_vocab is None:
            cfg = self.model(ref).cfg
            n_ctx, d_vocab = cfg.n_ctx, cfg.d_vocab
        return int(n_ctx), int(d_vocab)

    def tasks(self, ref: CheckpointRef, split: str = "test") -> TaskSet | None:
        """The tasks ``ref`` is evaluated on: the task file's (``RunOptions.tasks``: it takes precedence) tokenized
        with the checkpoint's own tokenizer, else the run's mixture's; None without either. Built once per run."""
        from interp.prompts import task_set

        if self._file(ref, "tasks") is not None:
            from interp.prompts.task_file import read_task_file

            tf = read_task_file(self._file(ref, "tasks"))
            tok = find_tokenizer_key(ref, self.source(ref).tokenizer)
            key = ("tasks-file", tf.sha256, tok, self._shape(ref), split)
            if key not in self._sets:
                self._sets[key] = task_set.file_tasks(tf, self.codec(ref), *self._shape(ref), split)
            return self._sets[key]
        if self.source(ref).fixed is not None:
            return task_set.fixed_tasks(self.source(ref).fixed)
        key = ("tasks-mixture", json.dumps(ref.mixture, sort_keys=True), split)
        if key not in self._sets:
            self._sets[key] = task_set.mixture_tasks(ref.mixture_spec, split, ref.run)
        return self._sets[key]

    def concepts(self, ref: CheckpointRef) -> ConceptSet | None:
        """The concepts file (``RunOptions.concepts``) tokenized with the checkpoint's own tokenizer, else a toy run's
        modular-addition task as a concept; None without either."""
        from interp.prompts.concepts import concept_prompts, mixture_concepts, read_concepts

        if self._file(ref, "concepts") is None:
            key = ("concepts-mixture", json.dumps(ref.mixture, sort_keys=True))
            if key not in self._sets:
                self._sets[key] = mixture_concepts(ref.mixture_spec, ref.run)
            return self._sets[key]

        cf = read_concepts(self._file(ref, "concepts"))
        key = ("concepts", cf.sha256, find_tokenizer_key(ref, self.source(ref).tokenizer), self._shape(ref))
        if key not in self._sets:
            self._sets[key] = concept_prompts(cf, self.codec(ref), *self._shape(ref))
        return self._sets[key]

    def prompt_set(self, ref: CheckpointRef, on: str = "prompts") -> PromptSet:
        """The prompt set of input ``on`` (one of ``INPUTS``) for ``ref``."""
        if on == "prompts":
            return self.prompts(ref)
        found = self.tasks(ref) if on == "tasks" else self.concepts(ref) if on == "concepts" else None
        if found is None:
            raise PromptError(f"checkpoint {ref.id} has no {on}: pass {SUPPLIED_BY.get(on, on)}")
        return found.prompts

    def model(self, ref: CheckpointRef) -> HookedTransformer:
        from interp.checkpoints.loading import SLOT

        return SLOT.get(ref, self.device, self.settings.allow_pickle, self.settings.cache.nonfinite)

    def ensure(self, ref: CheckpointRef, needs: Needs | list[Needs]) -> None:
        """Cache what ``needs`` asks for (one ``Needs`` or several, on inputs the run offers; the others are an
        analyzer's extra inputs this run does not have, and are skipped)."""
        have = self.available(ref)
        for n in Needs.union(list(needs) if isinstance(needs, (list, tuple)) else [needs]):
            if n.on in have:
                self.cache.ensure(ref, self.prompt_set(ref, n.on), n.hooks, n.grad_hooks,
                                  model_fn=lambda: self.model(ref))

    def acts(self, ref: CheckpointRef, hook: str, grad: bool = False, on: str = "prompts") -> HookArray:
        return self.cache.open(ref, self.prompt_set(ref, on), hook, grad)

    def request_tap(self, ref: CheckpointRef, analyzer: str, factory: Callable) -> None:
        """Ask whichever forward pass runs ``ref`` next to feed an analyzer's accumulators: ``factory(ref, model,
        prompts)`` makes them (``claim_taps``)."""
        self._tap_requests.setdefault(ref.id, []).append((analyzer, factory))

    def claim_taps(self, ref: CheckpointRef, model: Any, prompts: PromptSet) -> list:
        """The taps requested for ``ref``, made now that its model is loaded; each is kept in ``taps_made``."""
        out = []
        for name, factory in self._tap_requests.pop(ref.id, []):
            tap = factory(ref, model, prompts)
            self.taps_made[(name, ref.id)] = tap
            out.append(tap)
        return out

    def drop_taps(self) -> None:
        self._tap_requests.clear()
        self.taps_made.clear()

    def map(self, fn: Callable[[Any], Any], items: list) -> list:
        """``fn`` over ``items``, in order: as tasks of the Dask cluster when this job runs on one of its workers
        (shards of a unit fan out), else here, one after another."""
        try:
            from dask.distributed import get_worker, worker_client

            get_worker()
        except (ImportError, ValueError):
            return [fn(item) for item in items]
        with worker_client() as client:
            return client.gather(client.map(fn, items, pure=False))


def find_tokenizer_key(ref: CheckpointRef, explicit: Path | None) -> str:
    """The tokenizer a checkpoint's text inputs are tokenized with, as a key (its path): checkpoints of one run that
    share a tokenizer share their task and concept sets."""
    from interp.prompts.text import find_tokenizer

    return str(find_tokenizer(ref.path, ref.format, explicit).resolve())
