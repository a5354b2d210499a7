"""What an analyzer sees while it runs: prompts, the (one) loaded model, and the activation cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from interp.activations.cache import ActivationCache
from interp.activations.store import HookArray
from interp.errors import ConfigError
from interp.tasks import N_CTX, MixtureStream, PromptSet, eval_sets

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from interp.analyzers.base import Needs
    from interp.manifest import CheckpointRef


@dataclass(frozen=True)
class PromptSource:
    """Where evaluation prompts come from: the run's task mixture (test splits of every task plus
    ``n_background`` background sequences), or a user's token file (.npy, [prompt, pos] int) for series that have no
    mixture (e.g. Hugging Face checkpoints)."""

    n_background: int = 512
    split: str = "test"
    tokens_file: Path | None = None
    seed: int = 12345
    fixed: PromptSet | None = field(default=None, compare=False)  # explicit prompts (tests, planted models)

    def build(self, ref: CheckpointRef) -> PromptSet:
        if self.fixed is not None:
            return self.fixed
        if self.tokens_file is not None:
            return token_file_prompts(Path(self.tokens_file))
        spec = ref.mixture_spec
        if spec is None:
            raise ConfigError(f"run {ref.run!r} has no task mixture in its manifest; pass a token file "
                              f"(--tokens FILE.npy, [prompt, pos] integers) to say what to run the model on")
        parts = list(eval_sets(spec, self.split).values())  # type: ignore[arg-type]
        if self.n_background and spec.n_background:
            stream = MixtureStream(spec, batch_size=self.n_background, seed=self.seed)
            bg = stream.background.sample(self.n_background, np.random.default_rng(self.seed))
            parts.append(PromptSet(bg, np.full(len(bg), -1), np.ones((len(bg), N_CTX - 1), bool), stream.task_names))
        names = parts[0].task_names if parts else ()
        return PromptSet.concat([PromptSet(p.tokens, p.task_id, p.loss_mask, names) for p in parts])


def token_file_prompts(path: Path) -> PromptSet:
    """A user's token file as prompts, without reading it into memory: the tokens stay a read-only memory map (each
    consumer reads its batch's rows and widens them to int64 itself) and every prediction is scored through a
    broadcast view, so a 1e8-token file costs its page cache, not its size in RAM."""
    if not path.exists():
        raise ConfigError(f"token file {path} does not exist")
    try:
        toks = np.load(path, mmap_mode="r")
    except ValueError as e:   # e.g. an object array, which cannot be memory-mapped
        raise ConfigError(f"{path}: not a plain .npy array ({e})") from None
    if toks.ndim != 2 or toks.dtype.kind not in "iu" or toks.shape[1] < 2:
        raise ConfigError(f"{path}: expected a 2-D integer array [prompt, pos] with pos >= 2, got "
                          f"{toks.dtype} {toks.shape}")
    n = toks.shape[0]
    return PromptSet(toks, np.full(n, -1, dtype=np.int32), np.broadcast_to(np.True_, (n, toks.shape[1] - 1)), ())


class Context:
    """What a job sees. Models come from the process's single ``ModelSlot``: asking for another checkpoint's model
    replaces the current one (in place when the architecture is the same), so a process never holds two. Analyzers
    must leave the model as they found it (remove hooks, restore any weights they perturb)."""

    def __init__(self, cache: ActivationCache, device: str, prompts: PromptSource = PromptSource(),
                 allow_pickle: bool = False):
        self.cache, self.device, self.prompt_source, self.allow_pickle = cache, device, prompts, allow_pickle
        self._prompts: dict[str, PromptSet] = {}
        self.models_loaded = 0

    @property
    def batch_size(self) -> int:
        """Prompts per forward pass (``RunOptions.batch_size``), for analyzers that run the model themselves."""
        return self.cache.s.batch_size

    def prompts(self, ref: CheckpointRef) -> PromptSet:
        key = f"{ref.run}"
        if key not in self._prompts:
            self._prompts[key] = self.prompt_source.build(ref)
        return self._prompts[key]

    def model(self, ref: CheckpointRef) -> HookedTransformer:
        from interp.loading import SLOT

        before = SLOT.loads
        model = SLOT.get(ref, self.device, self.allow_pickle)
        self.models_loaded += SLOT.loads - before
        return model

    def release(self) -> None:
        """Free the model (end of a run; the slot is otherwise reused by the next job)."""
        from interp.loading import SLOT

        SLOT.clear()

    def ensure(self, ref: CheckpointRef, needs: Needs) -> None:
        self.cache.ensure(ref, self.prompts(ref), needs.hooks, needs.grad_hooks, model_fn=lambda: self.model(ref))

    def acts(self, ref: CheckpointRef, hook: str, grad: bool = False) -> HookArray:
        return self.cache.open(ref, self.prompts(ref), hook, grad)
