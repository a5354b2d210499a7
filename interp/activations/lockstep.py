"""Activations of several models streamed in lockstep: each batch of prompts goes through every model held, and the
hooks asked for are handed to consumers while they are in memory. Nothing per token reaches the disk.

This is what cross-seed statistics need: the activations of every seed on the same tokens, consumed by
accumulators whose size does not grow with the tokens. The disk cache (``interp.activations.cache``) stays for
analyzers that replay activations; at 1e8 tokens a cache of every layer's MLP activations would be terabytes.

Memory: the models held at once (``ModelGroup``: checked against the memory the device has free before loading;
the caller falls back to fewer at a time when they do not fit) plus one batch of activations per model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from interp.checkpoints.manifest import CheckpointRef
    from interp.prompts.prompt_set import PromptSet

def free_memory(device: str) -> int | None:
    """Bytes free for new tensors on ``device`` (RAM: the kernel's MemAvailable; CUDA: the driver's), or None."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def model_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


class ModelGroup:
    """The models of ``refs``, loaded side by side (not through the process's one-model slot) and released by
    ``close``. ``fits`` tells, from one model's size, whether ``n`` of them fit in half the free memory."""

    def __init__(self, refs: list[CheckpointRef], device: str, allow_pickle: bool = False, nonfinite: str = "raise"):
        from interp.checkpoints.loading import load_ref

        self.models = {r.id: load_ref(r, device=device, allow_pickle=allow_pickle, nonfinite=nonfinite)
                       for r in refs}

    def __getitem__(self, ref_id: str):
        return self.models[ref_id]

    def close(self) -> None:
        from interp.checkpoints.loading import release_memory

        self.models.clear()
        release_memory()

    @staticmethod
    def fits(one_model_bytes: int, n: int, device: str) -> bool:
        free = free_memory(device)
        return free is None or n * one_model_bytes <= free // 2


def stream(models: dict[Any, Any], prompts: PromptSet, rows: int, hooks: dict[Any, set[str]], device: str
           ) -> Iterator[tuple[slice, dict[tuple[Any, str], torch.Tensor]]]:
    """Per batch of ``rows`` prompts: (the rows, {(model key, hook): [prompt, pos, ...] float32 tensor}) for the
    ``hooks`` each model is asked for. Each model runs once per batch, up to the last layer any of its hooks needs;
    consumers choose their positions (``masked``)."""
    import torch

    from interp.activations.cache import stop_layer
    from interp.maths.losses import token_tensor

    for start in range(0, len(prompts), rows):
        part = slice(start, min(start + rows, len(prompts)))
        toks = token_tensor(prompts.tokens[part], device)
        out: dict[tuple[Any, str], torch.Tensor] = {}
        for key, names in hooks.items():
            if not names:
                continue
            model, got = models[key], {}

            def grab(act, hook, got=got):
                got[hook.name] = act.detach()
                return act

            with torch.inference_mode():
                model.run_with_hooks(toks, fwd_hooks=[(h, grab) for h in sorted(names)],
                                     stop_at_layer=stop_layer(names, model.cfg.n_layers))
            for h, act in got.items():
                out[(key, h)] = act.float()
        yield part, out


def masked(act: torch.Tensor, keep: np.ndarray | None) -> torch.Tensor:
    """[prompt, pos, d] activations as [token, d], only the positions ``keep`` ([prompt, pos] bool) counts."""
    import torch

    flat = act.reshape(-1, act.shape[-1])
    if keep is None or keep.all():
        return flat
    return flat[torch.as_tensor(keep.reshape(-1), device=act.device)]
