"""What an analyzer sees while it runs: prompts, the (one) loaded model, and the activation cache.

A ``Context`` lives as long as the process's share of one ``analyze`` call, not one job: jobs of every checkpoint
reuse it, so each prompt set is built (and a token file hashed) once, keyed by what it depends on
(``PromptSource.key``), and the model slot walks a series with one model's memory. ``Context.shared(settings)``
returns the process's context for those settings (a Dask worker process keeps its own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from interp.activations.cache import ActivationCache, CacheSettings
from interp.activations.store import HookArray
from interp.prompts.source import PromptSource, check_prompts

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from interp.checkpoints.manifest import CheckpointRef
    from interp.prompts.prompt_set import PromptSet


@dataclass(frozen=True)
class Needs:
    """What must be cached before an analyzer's ``run``: activations of ``hooks``, and activations plus loss
    gradients of ``grad_hooks``. Analyzers that use the model itself ask the context for it (``ctx.model``)."""

    hooks: tuple[str, ...] = ()
    grad_hooks: tuple[str, ...] = ()

    @staticmethod
    def union(needs: list[Needs]) -> Needs:
        """One forward pass's worth: every hook any of ``needs`` asks for."""
        return Needs(hooks=tuple(sorted({h for n in needs for h in n.hooks})),
                     grad_hooks=tuple(sorted({h for n in needs for h in n.grad_hooks})))


@dataclass(frozen=True)
class ContextSettings:
    """Everything a context depends on (hashable: the key of the process's shared contexts)."""

    cache: CacheSettings
    device: str = "cpu"
    prompts: PromptSource = PromptSource()
    allow_pickle: bool = False
    progress: bool = False


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

    def prompts(self, ref: CheckpointRef, source: PromptSource | None = None) -> PromptSet:
        """The prompts ``ref`` is evaluated on (``source``: another set, e.g. a training split), built once."""
        source = source or self.settings.prompts
        key = source.key(ref)
        if key not in self._prompts:
            self._prompts[key] = source.build(ref, self.settings.cache.root)
        checked = (key, ref.model.get("d_vocab"), ref.model.get("n_ctx"))
        if checked not in self._checked:
            check_prompts(self._prompts[key], ref.model, f"{source.describe(ref)} (checkpoint {ref.id})")
            self._checked.add(checked)
        return self._prompts[key]

    def model(self, ref: CheckpointRef) -> HookedTransformer:
        from interp.checkpoints.loading import SLOT

        return SLOT.get(ref, self.device, self.settings.allow_pickle, self.settings.cache.nonfinite)

    def ensure(self, ref: CheckpointRef, needs: Needs) -> None:
        self.cache.ensure(ref, self.prompts(ref), needs.hooks, needs.grad_hooks, model_fn=lambda: self.model(ref))

    def acts(self, ref: CheckpointRef, hook: str, grad: bool = False) -> HookArray:
        return self.cache.open(ref, self.prompts(ref), hook, grad)

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
