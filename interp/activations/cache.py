"""Batched, hook-filtered forward passes streamed to the HDF5 store, computed once and reused.

``ActivationCache.ensure(ref, prompts, hooks, grad_hooks, model_fn)`` returns the stored files for every requested
hook, running forward passes only for hooks that are not stored yet (and loading the model only then). Gradients are
d(per-prompt loss)/d(activation): the loss is the masked next-token cross-entropy of each prompt, summed over its
scored positions, so one backward of the batch sum gives every prompt's own gradient exactly (prompts do not
interact).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from interp.activations.store import HookArray, HookWriter, cache_key, hook_file, is_complete
from interp.checkpoints.hooks import hook_layer, is_mlp_activation
from interp.errors import HookNameError, NonFiniteError, suggest

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from interp.checkpoints.manifest import CheckpointRef
    from interp.prompts.prompt_set import PromptSet



def check_hooks(valid: Iterable[str], hooks: Iterable[str], where: str = "the model") -> None:
    valid = list(valid)
    for h in hooks:
        if h not in valid:
            raise HookNameError(f"hook {h!r} does not exist on {where}." + suggest(h, valid)
                                + " Hook names follow TransformerLens, e.g. 'blocks.0.mlp.hook_post'.")


def stop_layer(hooks: Iterable[str], n_layers: int) -> int | None:
    """The ``stop_at_layer`` that still computes every hook, or None when one lies past the last block."""
    layers = []
    for h in hooks:
        layer = hook_layer(h)
        if layer is None:
            if h.startswith(("hook_embed", "hook_pos_embed")):   # computed before block 0
                continue
            return None
        layers.append(layer)
    top = max(layers, default=-1) + 1
    return None if top >= n_layers else max(top, 1)


@dataclass(frozen=True)
class CacheSettings:
    root: Path
    batch_size: int = 512
    storage_dtype: str = "float32"   # float16 halves size and write time (measured); float32 keeps tests exact
    nonfinite: str = "raise"         # or "keep": count and store
    batch_tokens: int = 8192         # and at most this many tokens per pass (RunOptions.batch_tokens)

    def rows_per_pass(self, prompt_len: int) -> int:
        """Prompts per forward pass for prompts of ``prompt_len`` tokens: ``batch_size``, capped by
        ``batch_tokens`` (at least one prompt)."""
        return max(1, min(self.batch_size, self.batch_tokens // max(1, prompt_len)))


class ActivationCache:
    def __init__(self, settings: CacheSettings, device: str = "cpu", progress: bool = False):
        self.s, self.device, self.progress = settings, device, progress
        self.forward_passes = 0  # counts model forward batches: tests use it to prove reuse

    def key(self, ref: CheckpointRef, prompts: PromptSet) -> str:
        """Everything the stored values depend on: the checkpoint's bytes, the prompts, the weight processing and
        the storage dtype (a float16 cache is not a float32 one)."""
        return cache_key(ref.id, ref.sha256, prompts.digest(), f"{ref.processing.key()}|{self.s.storage_dtype}")

    def path(self, ref: CheckpointRef, prompts: PromptSet, hook: str, grad: bool = False) -> Path:
        return hook_file(self.s.root, self.key(ref, prompts), hook, grad)

    def missing(self, ref, prompts, hooks: Iterable[str], grad_hooks: Iterable[str]) -> tuple[list[str], list[str]]:
        return ([h for h in hooks if not is_complete(self.path(ref, prompts, h))],
                [h for h in grad_hooks if not is_complete(self.path(ref, prompts, h, grad=True))])

    def ensure(self, ref: CheckpointRef, prompts: PromptSet, hooks: Iterable[str] = (),
               grad_hooks: Iterable[str] = (), model_fn: Callable[[], HookedTransformer] | None = None) -> None:
        hooks, grad_hooks = sorted(set(hooks) | set(grad_hooks)), sorted(set(grad_hooks))
        need, need_grad = self.missing(ref, prompts, hooks, grad_hooks)
        if not need and not need_grad:
            return
        if model_fn is None:
            raise ValueError("activations are not cached and no model was given to compute them")
        model = model_fn()
        check_hooks(model.hook_dict, set(need) | set(need_grad), f"checkpoint {ref.id}")
        meta = {"checkpoint": ref.id, "sha256": ref.sha256 or "", "prompts": prompts.digest(),
                "processing": ref.processing.key(), "storage_dtype": self.s.storage_dtype, "n_prompts": len(prompts)}
        hooks = sorted(set(need) | set(need_grad)) if need_grad else need  # a backward pass also yields activations
        paths = {(h, False): self.path(ref, prompts, h) for h in hooks}
        paths.update({(h, True): self.path(ref, prompts, h, grad=True) for h in need_grad})
        self._run(model, prompts, hooks, need_grad, meta, paths)

    def _run(self, model: HookedTransformer, prompts: PromptSet, hooks: list[str], grad_hooks: list[str],
             meta: dict, paths: dict[tuple[str, bool], Path]) -> None:
        import torch
        from tqdm.auto import tqdm

        from interp.maths.losses import batch_tensor, masked_next_token_loss, token_tensor

        writers: dict[tuple[str, bool], HookWriter] = {}
        store: dict[str, torch.Tensor] = {}

        def keep(act, hook):
            if hook.name in grad_hooks:
                act.retain_grad()
            # forward-only hooks are converted to the storage dtype at once, on the calling thread, while the
            # activation is hot in cache; the float32 tensor is then free for the allocator to hand to the next op
            store[hook.name] = act if hook.name in grad_hooks else act.detach().to(storage)
            return act

        stop = None if grad_hooks else stop_layer(hooks, model.cfg.n_layers)
        storage = getattr(torch, self.s.storage_dtype)
        bs = self.s.rows_per_pass(prompts.tokens.shape[1])
        # Writing runs on one background thread so the next batch's forward pass overlaps this batch's conversion
        # and HDF5 write (torch releases the GIL while it computes). The queue holds at most two batches, so memory
        # stays bounded; one thread keeps writes in order.
        out = _Background(lambda item: self._write(writers, *item, meta, paths), depth=2)
        try:
            for start in tqdm(range(0, len(prompts), bs), desc=f"cache {meta['checkpoint']}",
                              disable=not self.progress or len(prompts) <= 20 * bs, leave=False):
                part = prompts.subset(slice(start, start + bs))
                toks = token_tensor(part.tokens, self.device)
                fwd = [(h, keep) for h in hooks]
                if grad_hooks:
                    from interp.maths.determinism import deterministic

                    with torch.enable_grad(), deterministic():
                        logits = model.run_with_hooks(toks, fwd_hooks=fwd)
                        loss = masked_next_token_loss(logits, toks, batch_tensor(part.loss_mask, self.device),
                                                      reduction="none")
                        loss.sum().backward()
                    model.zero_grad(set_to_none=True)
                else:
                    with torch.inference_mode():
                        model.run_with_hooks(toks, fwd_hooks=fwd, stop_at_layer=stop)
                self.forward_passes += 1
                for h in hooks:
                    out.put((h, False, *self._prepare(h, False, store[h].detach(), meta)))
                for h in grad_hooks:
                    out.put((h, True, *self._prepare(h, True, store[h].grad, meta)))
                store.clear()
            out.close()
            for w in writers.values():
                w.commit()
        except BaseException:
            out.close(cancel=True)
            for w in writers.values():
                w.abort()
            raise

    def _prepare(self, hook: str, grad: bool, t, meta: dict) -> tuple:
        """(numpy array in the storage dtype, its count of non-finite values), on the calling thread.

        Conversion and the finiteness count run in torch (multi-threaded, one pass each; in numpy they cost more
        than the forward pass itself on small models), and here rather than on the writer thread: torch ops there
        start a second OpenMP team, four threads on two cores."""
        import torch

        # gradients stay float32: loss gradients of a trained model sit far below float16's smallest normal number
        t = t.to(torch.float32 if grad else getattr(torch, self.s.storage_dtype))   # first: float16 overflows at 65,504
        n_bad = 0
        if t.is_floating_point() and not torch.isfinite(t.sum(dtype=torch.float32)):  # finite iff every term is
            n_bad = int(t.numel() - torch.isfinite(t).sum())                # (barring overflow: then count exactly)
        if n_bad and self.s.nonfinite == "raise":
            raise NonFiniteError(f"non-finite {'gradient' if grad else 'activation'} at hook {hook!r} of checkpoint "
                                 f"{meta['checkpoint']} (storage dtype {self.s.storage_dtype}); pass "
                                 f"nonfinite='keep' to store and count them")
        if t.dtype == torch.bfloat16:   # numpy has none: keep the bit patterns (interp.activations.store)
            return t.view(torch.int16).cpu().numpy().view(np.uint16), n_bad
        return t.cpu().numpy(), n_bad

    def _write(self, writers: dict, hook: str, grad: bool, arr, n_bad: int, meta: dict, paths: dict) -> None:
        """On the writer thread: numpy and HDF5 only."""
        w = writers.get((hook, grad))
        if w is None:
            dims = ("prompt", "pos") + tuple(f"dim{i}" for i in range(arr.ndim - 2))
            if is_mlp_activation(hook):
                dims = ("prompt", "pos", "neuron")
            attrs = {**meta, "hook": hook, "grad": grad, "json": json.dumps(meta)}
            w = writers[(hook, grad)] = HookWriter(paths[(hook, grad)], arr.shape[1:], dims, attrs,
                                                   dtype="float32" if grad else self.s.storage_dtype,
                                                   expected_rows=meta["n_prompts"])
        w.append(arr, nonfinite=n_bad)

    def open(self, ref: CheckpointRef, prompts: PromptSet, hook: str, grad: bool = False) -> HookArray:
        path = self.path(ref, prompts, hook, grad)
        if not is_complete(path):
            raise FileNotFoundError(f"{path}: hook {hook!r} of {ref.id} is not cached; call ensure() first")
        return HookArray(path)


class _Background:
    """Runs ``fn(item)`` for queued items on one worker thread; an error in the worker is raised in the caller at
    the next ``put`` or at ``close``."""

    def __init__(self, fn: Callable, depth: int = 2):
        import queue
        import threading

        self._fn, self._q, self._error = fn, queue.Queue(maxsize=depth), None
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (item := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._fn(item)
                except BaseException as e:  # handed to the caller
                    self._error = e

    def put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def close(self, cancel: bool = False) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None and not cancel:
            raise self._error
