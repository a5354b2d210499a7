"""Streaming cross-seed correlation: speed vs a plain GEMM and vs the reference code's way; accuracy; memory.

    python benchmarks/correlation.py [--tokens 200000] [--layers 2] [--d-mlp 256]

All in one run, best of 4 interleaved repetitions:
- ours: ``StreamingCorrelation`` over all layer pairs at once ([tokens, L*d] x [tokens, L*d]), chunks of 4,096;
- plain GEMM: the same chunked products ``x.T @ y`` into a preallocated float32 buffer, nothing else (the roofline);
- reference way (wesg52/universal-neurons ``correlations_fast.py``): per batch, a float32 einsum per layer pair,
  raw-moment sums accumulated in float64, one layer pair at a time.
Prints GFLOP/s of ours as a share of the GEMM's (target >= 70%), the speed ratio vs the reference (target >= 2x),
both methods' max |r| error on a stress case (mean / std = 100) against float64 numpy, and the peak RSS of
streaming 10x more tokens (flat).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from interp.activations.stats import StreamingCorrelation  # noqa: E402

CHUNK = 4096


def make_chunks(tokens: int, units: int, seed: int = 0, mean: float = 0.0, std: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    for s in range(0, tokens, CHUNK):
        n = min(CHUNK, tokens - s)
        z = torch.randn(n, 8, generator=g)
        mix = torch.randn(8, units, generator=torch.Generator().manual_seed(seed + 1))
        yield mean + std * torch.relu(z @ mix + 0.5 * torch.randn(n, units, generator=g))


def ours(xs, ys) -> np.ndarray:
    sc = StreamingCorrelation()
    for x, y in zip(xs, ys):
        sc.update(x, y)
    return sc.result().numpy()


def plain_gemm(xs, ys) -> None:
    out = torch.empty(xs[0].shape[1], ys[0].shape[1])
    for x, y in zip(xs, ys):
        torch.mm(x.T, y, out=out)


def reference(xs, ys, layers: int) -> np.ndarray:
    d = xs[0].shape[1] // layers
    blocks = {}
    for la in range(layers):
        for lb in range(layers):
            n, sx, sy, sxx, syy, sxy = 0, 0, 0, 0, 0, 0
            for x, y in zip(xs, ys):
                a, b = x[:, la * d:(la + 1) * d], y[:, lb * d:(lb + 1) * d]
                n += len(a)
                sx = sx + a.sum(0).double()
                sy = sy + b.sum(0).double()
                sxx = sxx + (a * a).sum(0).double()
                syy = syy + (b * b).sum(0).double()
                sxy = sxy + torch.einsum("ta,tb->ab", a, b).double()
            cov = sxy - torch.outer(sx, sy) / n
            blocks[(la, lb)] = (cov / torch.outer((sxx - sx**2 / n).sqrt(), (syy - sy**2 / n).sqrt())).numpy()
    return np.block([[blocks[(la, lb)] for lb in range(layers)] for la in range(layers)])


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rss_of_streaming(tokens: int, units: int) -> float:
    code = ("import sys, json, resource; sys.path.insert(0, '.'); import benchmarks.correlation as b; "
            f"from interp.activations.stats import StreamingCorrelation as S; s = S(); "
            f"[s.update(x, x) for x in b.make_chunks({tokens}, {units})]; s.result(); "
            "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-mlp", type=int, default=256)
    args = ap.parse_args()
    units = args.layers * args.d_mlp
    xs, ys = list(make_chunks(args.tokens, units, 0)), list(make_chunks(args.tokens, units, 7))
    flops = 2.0 * args.tokens * units * units
    t_ours, t_gemm, t_ref = [], [], []
    for _ in range(4):
        t_ours.append(timed(lambda: ours(xs, ys)))
        t_gemm.append(timed(lambda: plain_gemm(xs, ys)))
        t_ref.append(timed(lambda: reference(xs, ys, args.layers)))
    print(f"tokens {args.tokens:,}, {args.layers} layers x {args.d_mlp} neurons, threads {torch.get_num_threads()}")
    print(f"plain GEMM      {flops / min(t_gemm) / 1e9:7.1f} GFLOP/s  ({min(t_gemm):.3f} s)")
    print(f"ours            {flops / min(t_ours) / 1e9:7.1f} GFLOP/s  ({min(t_ours):.3f} s): "
          f"{min(t_gemm) / min(t_ours):.0%} of GEMM (target >= 70%)")
    print(f"reference way   {flops / min(t_ref) / 1e9:7.1f} GFLOP/s  ({min(t_ref):.3f} s): ours is "
          f"{min(t_ref) / min(t_ours):.2f}x faster (target >= 2x)")

    sx, sy = list(make_chunks(20_000, units, 3, mean=100.0, std=1.0)), list(make_chunks(20_000, units, 5,
                                                                                          mean=-50.0, std=0.5))
    x64, y64 = torch.cat(sx).double().numpy(), torch.cat(sy).double().numpy()
    truth = np.corrcoef(x64, y64, rowvar=False)[:units, units:]
    ok = np.isfinite(truth)
    err_ours = np.abs(ours(sx, sy) - truth)[ok].max()
    err_ref = np.nanmax(np.abs(reference(sx, sy, args.layers) - truth)[ok])
    print(f"stress case (mean/std >= 100): max |r error| ours {err_ours:.1e}, reference way {err_ref:.1e}")
    small, large = rss_of_streaming(args.tokens // 10, units), rss_of_streaming(args.tokens, units)
    print(f"peak RSS streaming {args.tokens // 10:,} tokens: {small:.0f} MB; {args.tokens:,}: {large:.0f} MB "
          f"(ratio {large / small:.2f})")


if __name__ == "__main__":
    main()
