"""GPU figures, each a ratio against a baseline measured in the same run (issue 19):

- activation cache: tokens/s of ``ActivationCache.ensure`` (forward pass, hook filter, dtype conversion, HDF5
  write on a background thread) and its ratio to the bare forward pass of the same model on the same batches;
- cross-seed correlation (the ``universal-neurons`` blocks, ``StreamingCorrelation``): TFLOP/s as a fraction of
  this device's measured float32 matmul peak (a plain ``torch.mm`` loop of the same shape);
- SAE fitting: tokens/s of interp's ``fit_sae`` loop against sae-lens's own ``SAETrainer`` on the same activations.

Without CUDA it says so and exits 0.

    python benchmarks/gpu.py [--tokens 1000000] [--d-mlp 3072]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sync() -> None:
    torch.cuda.synchronize()


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_peak(n: int = 8192) -> float:
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    out = torch.empty(n, n, device="cuda")
    secs = timed(lambda: [torch.mm(a, b, out=out) for _ in range(10)])
    return 10 * 2 * n**3 / secs


def correlation(tokens: int, d: int) -> tuple[float, float]:
    """(TFLOP/s of one block's streaming correlation, the same chunks through a bare mm)."""
    from interp.maths.stats import StreamingCorrelation

    chunk = 8192
    xs = [torch.relu(torch.randn(chunk, d, device="cuda")) for _ in range(tokens // chunk)]
    ys = [torch.relu(torch.randn(chunk, d, device="cuda")) for _ in range(tokens // chunk)]

    def ours():
        sc = StreamingCorrelation()
        for x, y in zip(xs, ys):
            sc.update(x, y)
        sc.result()

    flops = 2.0 * len(xs) * chunk * d * d
    return flops / timed(ours) / 1e12, flops


def cache(tokens: int) -> tuple[float, float]:
    """(cache tokens/s, bare forward tokens/s) on a GPT-2-small-shaped random model."""
    import numpy as np

    from interp.activations.cache import ActivationCache, CacheSettings
    from interp.checkpoints.hooks import mlp_hooks
    from interp.checkpoints.loading import build_model
    from interp.checkpoints.manifest import CheckpointRef, Processing
    from interp.prompts.prompt_set import PromptSet

    kw = dict(n_layers=12, d_model=768, d_mlp=3072, n_heads=12, d_head=64, n_ctx=256, d_vocab=50257,
              act_fn="gelu_new", normalization_type="LN")
    model = build_model(kw, device="cuda")
    rows = tokens // 256
    toks = np.random.default_rng(0).integers(0, 50257, size=(rows, 256))
    prompts = PromptSet(toks, np.full(rows, -1), np.ones((rows, 255), bool), ())
    batch = 64

    def bare():
        with torch.inference_mode():
            for s in range(0, rows, batch):
                model(torch.as_tensor(toks[s:s + batch], device="cuda"))

    t_bare = timed(bare, 2)
    ref = CheckpointRef(run="bench", seed=0, step=0, path=Path("/dev/null"), model=kw, processing=Processing())
    times = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as d:
            c = ActivationCache(CacheSettings(Path(d), batch, "bfloat16"), device="cuda")
            sync()
            t = time.perf_counter()
            c.ensure(ref, prompts, mlp_hooks(12), model_fn=lambda: model)
            sync()
            times.append(time.perf_counter() - t)
    return rows * 256 / min(times), rows * 256 / t_bare


def sae(tokens: int, d_in: int = 768, d_sae: int = 8192) -> tuple[float, float]:
    """(interp fit_sae tokens/s, sae-lens SAETrainer tokens/s) on the same activations."""
    import numpy as np

    from interp.analyzers.sae_manifold.sae_fit import SAESpec, fit_sae

    x = np.random.default_rng(0).normal(size=(tokens, d_in)).astype(np.float32)
    steps = tokens // 4096
    t = time.perf_counter()
    fit_sae(x, SAESpec("topk", d_sae, 32), steps=steps, batch_size=4096, device="cuda")
    sync()
    ours = steps * 4096 / (time.perf_counter() - t)
    from sae_lens import LoggingConfig, SAETrainer, SAETrainerConfig, TopKTrainingSAE, TopKTrainingSAEConfig

    data = torch.as_tensor(x, device="cuda")

    def batches():
        g = torch.Generator(device="cpu").manual_seed(0)
        while True:
            yield data[torch.randint(0, len(data), (4096,), generator=g).cuda()]

    cfg = SAETrainerConfig(total_training_samples=steps * 4096, train_batch_size_samples=4096, lr=3e-3,
                           lr_end=3e-3, device="cuda",
                           logger=LoggingConfig(log_to_wandb=False))   # as benchmarks/sae.py
    trainer = SAETrainer(cfg=cfg, sae=TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=32,
                                                                            device="cuda")),
                         data_provider=batches())
    t = time.perf_counter()
    trainer.fit()
    sync()
    return ours, steps * 4096 / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--d-mlp", type=int, default=3072)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (the CPU figures are in benchmarks/cache.py, correlation.py, "
              "grads.py, sae.py)")
        return
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    peak = matmul_peak()
    tflops, _ = correlation(args.tokens, args.d_mlp)
    print(f"float32 matmul peak (torch.mm 8192^2): {peak / 1e12:.1f} TFLOP/s")
    print(f"cross-seed correlation block ({args.d_mlp}^2): {tflops:.1f} TFLOP/s = {tflops * 1e12 / peak:.0%} of peak")
    ours, bare = cache(min(args.tokens, 262_144))
    print(f"activation cache: {ours:,.0f} tokens/s vs bare forward {bare:,.0f} tokens/s: ratio {bare / ours:.2f}")
    mine, theirs = sae(min(args.tokens, 409_600))
    print(f"SAE fitting: interp {mine:,.0f} tokens/s vs sae-lens SAETrainer {theirs:,.0f} tokens/s "
          f"({mine / theirs:.2f}x)")


if __name__ == "__main__":
    main()
