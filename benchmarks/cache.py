"""Cost of streaming activations to HDF5 vs a plain forward pass, and memory vs number of tokens.

    python benchmarks/cache.py [--prompts 60000] [--batch-size 4096]

On the bundled wide model (last step, seed 0), in one run: the best of 4 interleaved repetitions of (a) plain
batched forward passes over the prompts (inference mode, no hooks) and (b) ``ActivationCache.ensure`` caching
``blocks.0.mlp.hook_post`` (float16 storage) for the same prompts, from scratch, with the same prompts per pass.
Prints (b)/(a); target <= 1.25. The bundled model is d_model 64 on 3-token prompts, where writing a cached value
costs as much as the forward FLOP that made it; the same figure follows for random 2-layer models of realistic
widths (``--d-model``) on 64-token prompts.
Then the peak RSS of caching N and 10 N prompts, each in a fresh subprocess; target ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

HOOK = "blocks.0.mlp.hook_post"


def prompts_for(ref, n: int):
    from interp.prompts.prompt_set import PromptSet
    from interp.prompts.source import PromptSource

    base = PromptSource(n_background=512).build(ref)
    reps = -(-n // len(base))
    idx = np.arange(reps * len(base)) % len(base)
    return PromptSet(base.tokens[idx][:n], base.task_id[idx][:n], base.loss_mask[idx][:n], base.task_names)


def cpu_others() -> float:
    """Load average minus ours, a rough flag for a busy shared machine."""
    return os.getloadavg()[0]


def bundled_wide(n_prompts: int):
    from interp.api import load_series
    from interp.checkpoints.loading import load_ref

    ref = max(load_series(None).refs(run="wide", seed=0), key=lambda r: r.step)
    return ref, load_ref(ref, device="cpu"), prompts_for(ref, n_prompts)


def random_model(d_model: int, n_tokens: int, n_ctx: int = 64):
    """A randomly initialised 2-layer GELU model of width ``d_model`` (d_mlp 4 d_model, heads of 64) on random
    64-token prompts: a realistic ratio of forward FLOP to cached values, which the d_model 64 bundle lacks."""
    from interp.checkpoints.loading import build_model
    from interp.checkpoints.manifest import CheckpointRef, Processing
    from interp.prompts.prompt_set import PromptSet

    kw = dict(n_layers=2, d_model=d_model, d_mlp=4 * d_model, n_heads=max(1, d_model // 64), d_head=64,
              n_ctx=n_ctx, d_vocab=2048, act_fn="gelu", normalization_type="LN")
    model = build_model(kw, device="cpu").eval()
    ref = CheckpointRef(run="bench", seed=0, step=0, path=Path("random"), model=kw, processing=Processing(),
                        sha256="0" * 64)
    n = max(1, n_tokens // n_ctx)
    tokens = np.random.default_rng(0).integers(0, kw["d_vocab"], size=(n, n_ctx))
    return ref, model, PromptSet(tokens, np.full(n, -1), np.ones((n, n_ctx - 1), bool), ())


def timing(ref, model, prompts, batch_size: int, reps: int = 4) -> None:
    """Caches the *last* layer's MLP output, so the cached pass runs every block, as the plain one does."""
    import torch

    from interp.activations.cache import ActivationCache, CacheSettings

    toks = torch.as_tensor(prompts.tokens)
    hook = f"blocks.{model.cfg.n_layers - 1}.mlp.hook_post"
    settings = partial(CacheSettings, batch_size=batch_size, storage_dtype="float16")
    rows = settings(None).rows_per_pass(toks.shape[1])   # the same passes for both: batch_size, token-capped

    def plain() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(toks), rows):
                model(toks[s:s + rows])
        return time.perf_counter() - t

    def cached() -> float:
        root = Path(tempfile.mkdtemp(prefix="interp-bench-"))
        cache = ActivationCache(settings(root))
        t = time.perf_counter()
        cache.ensure(ref, prompts, [hook], model_fn=lambda: model)
        dt = time.perf_counter() - t
        shutil.rmtree(root)
        return dt

    plain(), cached()  # warm-up
    a, b = [], []
    for _ in range(reps):
        a.append(plain())
        b.append(cached())
    n_tok = toks.numel()
    print(f"d_model {model.cfg.d_model}, tokens {n_tok:,}, {rows} prompts per pass, threads "
          f"{torch.get_num_threads()}, load avg {cpu_others():.1f}")
    print(f"plain forward      best {min(a):.3f} s  ({n_tok / min(a) / 1e3:.0f}k tok/s)")
    print(f"cache to HDF5      best {min(b):.3f} s  ({n_tok / min(b) / 1e3:.0f}k tok/s)")
    print(f"ratio cache / forward: {min(b) / min(a):.2f}  (target <= 1.25)")


def peak_rss(n_prompts: int, batch_size: int) -> float:
    code = (f"import sys; sys.argv=['x']; import benchmarks.cache as b; b._cache_once({n_prompts}, {batch_size})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def _cache_once(n_prompts: int, batch_size: int) -> None:
    from benchmarks.memory import peak_rss_mb
    from interp.activations.cache import ActivationCache, CacheSettings
    from interp.api import load_series
    from interp.checkpoints.loading import load_ref

    ref = max(load_series(None).refs(run="wide", seed=0), key=lambda r: r.step)
    model = load_ref(ref, device="cpu")
    prompts = prompts_for(ref, n_prompts)
    root = Path(tempfile.mkdtemp(prefix="interp-bench-"))
    base = peak_rss_mb()
    ActivationCache(CacheSettings(root, batch_size=batch_size)).ensure(ref, prompts, [HOOK], model_fn=lambda: model)
    shutil.rmtree(root)
    peak = peak_rss_mb()
    print(json.dumps({"peak_rss_mb": peak, "before_mb": base}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=60000)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--d-model", type=int, nargs="*", default=[256, 512],
                    help="also time random 2-layer models of these widths on 64-token prompts")
    ap.add_argument("--tokens", type=int, default=40960, help="tokens for the random models")
    args = ap.parse_args()
    timing(*bundled_wide(args.prompts), args.batch_size)
    for d in args.d_model:
        timing(*random_model(d, args.tokens), args.batch_size)
    small, large = peak_rss(args.prompts // 10, args.batch_size), peak_rss(args.prompts, args.batch_size)
    print(f"peak RSS caching {args.prompts // 10:,} prompts: {small:.0f} MB; {args.prompts:,} prompts: {large:.0f} MB;"
          f" ratio {large / small:.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
