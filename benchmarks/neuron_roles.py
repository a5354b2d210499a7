"""Cost of ``neuron-roles`` on a GPT-2-small-sized model, and that it does not grow with the tokens cached.

    python benchmarks/neuron_roles.py [--prompts 16] [--pos 128] [--reps 2] [--n-layers 12] [--d-vocab 50257]

Builds a randomly initialised HookedTransformer of GPT-2 small's shape from a config (12 layers, d_model 768,
d_mlp 3072, 12 heads, vocabulary 50,257, n_ctx 1024, LayerNorm; nothing downloaded), caches the keys the analyzer
needs (``blocks.{1..11}.attn.hook_k``) for N random prompts and, separately, for 2 N, and times ``NeuronRoles.run``
on each in one process, interleaved, best of ``--reps``: the weights are the same, only the key cache doubles.
Prints both wall times and their ratio (target: about 1, the cost independent of the tokens), the part spent
reading keys, and the floor set by the hardware: one float64 (and float32) product of every neuron's ``w_out``
with ``W_U`` on this machine, which the exact vocabulary moments cannot avoid (target for the whole run: < 10 s on
2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def gpt2_small(n_layers: int, d_vocab: int):
    from interp.checkpoints.loading import build_model
    from interp.checkpoints.manifest import CheckpointRef, Processing

    kw = dict(n_layers=n_layers, d_model=768, d_mlp=3072, n_heads=12, d_head=64, n_ctx=1024, d_vocab=d_vocab,
              act_fn="gelu_new", normalization_type="LN", seed=0)
    model = build_model(kw, device="cpu").eval()
    ref = CheckpointRef(run="bench", seed=0, step=0, path=Path("random"), model=kw, processing=Processing(),
                        sha256="0" * 64)
    return ref, model


def context(model, prompts, root: Path):
    """A context whose model is the one in memory (nothing is saved to disk or loaded)."""
    from interp.activations.cache import CacheSettings
    from interp.prompts.source import PromptSource
    from interp.runner.context import Context, ContextSettings

    class InMemory(Context):
        def model(self, ref):
            return model

    return InMemory(ContextSettings(CacheSettings(root), "cpu", PromptSource(fixed=prompts)))


def cached(ref, model, n_prompts: int, pos: int, root: Path):
    """A context with the keys the analyzer needs cached for ``n_prompts`` random prompts (the forward pass that
    caches them is not timed: it is shared with every other analyzer of a real run)."""
    from interp.analyzers.neuron_roles.analyzer import NeuronRoles
    from interp.prompts.prompt_set import PromptSet

    tokens = np.random.default_rng(0).integers(0, model.cfg.d_vocab, size=(n_prompts, pos))
    prompts = PromptSet(tokens, np.full(n_prompts, -1), np.ones((n_prompts, pos - 1), bool), ())
    ctx = context(model, prompts, root)
    ctx.ensure(ref, NeuronRoles().needs(ref))
    return ctx


def timed_run(ref, ctx) -> tuple[float, float, object]:
    """(wall time of the analyzer's run, of reading the keys alone, the result)."""
    from interp.analyzers.base import Unit
    from interp.analyzers.neuron_roles.analyzer import NeuronRoles, first_keys

    a = NeuronRoles()
    t = time.perf_counter()
    first_keys(ctx, ref, a.config.chunk_tokens)
    keys = time.perf_counter() - t
    t = time.perf_counter()
    result = a.run(Unit(a.name, (ref,)), ctx)
    return time.perf_counter() - t, keys, result


def product_floor(model) -> dict[str, float]:
    """Seconds for one product of every layer's W_out with W_U, in float64 and float32, in blocks of 333 neurons."""
    import torch

    out = {}
    for dtype in (torch.float64, torch.float32):
        w_u = model.W_U.detach().to(dtype)
        t = time.perf_counter()
        for layer in range(model.cfg.n_layers):
            w = model.blocks[layer].mlp.W_out.detach().to(dtype)
            for s in range(0, len(w), 333):
                w[s:s + 333] @ w_u
        out[str(dtype).removeprefix("torch.")] = time.perf_counter() - t
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16, help="N: prompts in the smaller key cache")
    ap.add_argument("--pos", type=int, default=128, help="tokens per prompt")
    ap.add_argument("--n-layers", type=int, default=12)
    ap.add_argument("--d-vocab", type=int, default=50257)
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions of each run (the best is kept)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    t = time.perf_counter()
    ref, model = gpt2_small(args.n_layers, args.d_vocab)
    print(f"model: {args.n_layers} layers, d_model 768, d_mlp 3072, vocab {args.d_vocab} (built in "
          f"{time.perf_counter() - t:.1f} s); threads {torch.get_num_threads()}, load avg {os.getloadavg()[0]:.1f}")
    root = Path(tempfile.mkdtemp(prefix="interp-bench-roles-"))
    try:
        sizes = (args.prompts, 2 * args.prompts)
        ctxs = {n: cached(ref, model, n, args.pos, root / str(n)) for n in sizes}
        runs: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
        for _ in range(args.reps):                       # interleaved: a busy machine slows both alike
            for n in sizes:
                wall, keys, r = timed_run(ref, ctxs[n])
                runs[n].append((wall, keys))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    best = {n: min(runs[n]) for n in sizes}
    for n in sizes:
        print(f"neuron-roles run, {n * args.pos:,} tokens cached: best of {args.reps} {best[n][0]:.1f} s "
              f"(all: {', '.join(f'{w:.1f}' for w, _ in runs[n])} s; reading keys {best[n][1]:.2f} s)")
    small, large = best[sizes[0]][0], best[sizes[1]][0]
    print(f"ratio 2N / N: {large / small:.2f}  (target: about 1)")
    print(f"whole run: {small:.1f} s  (target < 10 s on 2 cores); load avg now {os.getloadavg()[0]:.1f}")
    floor = product_floor(model)
    print("floor, W_out W_U for every neuron alone: " + ", ".join(f"{k} {v:.1f} s" for k, v in floor.items()))
    print("roles found (random weights): " + ", ".join(f"{k} {r.scalars[f'n_{k}']}" for k in r.scalars["counts"]))


if __name__ == "__main__":
    main()
