"""Streaming cross-seed correlation: speed vs a plain GEMM and vs the reference code's way; accuracy; memory.

    python benchmarks/correlation.py [--tokens 200000] [--layers 2] [--d-mlp 256]

All in one run, ``--reps`` interleaved repetitions (7 by default), each repetition timing ours, the GEMM and the
reference back to back; the ratios are taken per repetition and the median and range over repetitions printed (a
ratio of best-ofs mixes repetitions that a busy neighbour slowed differently):
- ours: ``StreamingCorrelation`` over all layer pairs at once ([tokens, L*d] x [tokens, L*d]), chunks of 4,096;
- plain GEMM: the same chunked products ``x.T @ y`` into a preallocated float32 buffer, nothing else (the roofline);
- reference way (wesg52/universal-neurons ``correlations_fast.py``, re-implemented here): float16 activations
  [layer, neuron, token] in batches of 32 x 512 tokens; per batch and layer pair a float32 einsum added into a float64
  [l1, n1, l2, n2] accumulator, one layer pair at a time; float16 sums; the raw-moment formula.
Prints GFLOP/s of ours as a share of the GEMM's (target >= 70%), the speed ratio vs the reference (target >= 2x),
both methods' max |r| error on a stress case (mean / std = 100) against float64 numpy, and the peak RSS of
streaming 10x more tokens (flat).

One correlation on its own is bound by the GEMM: when the reference way already runs at 60-75% of the plain GEMM,
no float32 method at equal work can be 2x faster than it. So the benchmark also times what ``universal-neurons``
computes, every seed pair *with both rotated baselines* (``--seeds``, 3 by default, on half the tokens):
ours is ``cross_seed`` (one cross GEMM per pair and layer pair, the baselines from sums and Gram matrices); the
reference way is its script run per pair and per baseline (``--baseline rotation`` rotates seed b's activations
batch by batch in float32 and streams them again).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from interp.maths.stats import StreamingCorrelation  # noqa: E402

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


def reference_layout(xs, layers: int, batch_tokens: int = 16384) -> list[torch.Tensor]:
    """The reference code's input: float16 activations [layer, neuron, token] per batch of 32 x 512 tokens (its
    defaults). Built outside the timed region: its cost belongs to the reference's data pipeline, not its maths."""
    x = torch.cat(xs)
    d = x.shape[1] // layers
    return [x[s:s + batch_tokens].T.reshape(layers, d, -1).half().contiguous() for s in range(0, len(x), batch_tokens)]


def reference(b1s, b2s) -> np.ndarray:
    """The reference code's maths (StreamingPearsonComputer): per batch and layer pair a float32 einsum added into a
    float64 [l1, n1, l2, n2] accumulator; sums and sums of squares of the float16 activations; raw-moment formula."""
    layers, d, _ = b1s[0].shape
    f64 = dict(dtype=torch.float64)
    m1_sum, m1_sq = torch.zeros(layers, d, **f64), torch.zeros(layers, d, **f64)
    m2_sum, m2_sq = torch.zeros(layers, d, **f64), torch.zeros(layers, d, **f64)
    cross = torch.zeros(layers, d, layers, d, **f64)
    n = 0
    for b1, b2 in zip(b1s, b2s):
        for l1 in range(layers):
            a = b1[l1].to(torch.float32)
            for l2 in range(layers):
                cross[l1, :, l2, :] += torch.einsum("it,jt->ij", a, b2[l2].to(torch.float32))
        m1_sum += b1.sum(dim=-1)
        m1_sq += (b1**2).sum(dim=-1)
        m2_sum += b2.sum(dim=-1)
        m2_sq += (b2**2).sum(dim=-1)
        n += b1.shape[-1]
    num = cross - torch.einsum("ai,bj->aibj", m1_sum, m2_sum) / n
    den = torch.einsum("ai,bj->aibj", (m1_sq - m1_sum**2 / n).sqrt(), (m2_sq - m2_sum**2 / n).sqrt())
    return (num / den).reshape(layers * d, layers * d).numpy()


def reference_rotated(b1s, b2s, rot: torch.Tensor) -> np.ndarray:
    """The reference script's rotation baseline: each batch of seed b rotated per layer (float32 einsum, as in its
    ``run_correlation_experiment``), then the same streaming maths."""
    rotated = [torch.stack([torch.einsum("nt,mn->mt", b[l].float(), rot[l]) for l in range(b.shape[0])]).half()
               for b in b2s]
    return reference(b1s, rotated)


def analysis_ours(seeds: list[list[torch.Tensor]], layers: int) -> dict:
    from interp.analyzers.universal_neurons.cross_seed import cross_seed_correlations

    d = seeds[0][0].shape[1] // layers

    def chunks(keys):
        for i in range(len(seeds[0])):
            yield {(s, l): seeds[s][i][:, l * d:(l + 1) * d] for s, l in keys}

    return cross_seed_correlations(chunks, len(seeds), layers, d, seed=0)


def analysis_reference(layouts: list[list[torch.Tensor]], rots: list[torch.Tensor]) -> None:
    for a in range(len(layouts)):
        for b in range(a + 1, len(layouts)):
            reference(layouts[a], layouts[b])
            reference_rotated(layouts[a], layouts[b], rots[b])
            reference_rotated(layouts[b], layouts[a], rots[a])


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rss_of_streaming(tokens: int, units: int) -> float:
    code = ("import sys, json; sys.path.insert(0, '.'); import benchmarks.correlation as b; "
            "from benchmarks.memory import peak_rss_mb; "
            f"from interp.maths.stats import StreamingCorrelation as S; s = S(); "
            f"[s.update(x, x) for x in b.make_chunks({tokens}, {units})]; s.result(); "
            "print(json.dumps(peak_rss_mb()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-mlp", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    units = args.layers * args.d_mlp
    xs, ys = list(make_chunks(args.tokens, units, 0)), list(make_chunks(args.tokens, units, 7))
    r1, r2 = reference_layout(xs, args.layers), reference_layout(ys, args.layers)
    flops = 2.0 * args.tokens * units * units
    t_ours, t_gemm, t_ref = [], [], []
    for _ in range(args.reps):
        t_ours.append(timed(lambda: ours(xs, ys)))
        t_gemm.append(timed(lambda: plain_gemm(xs, ys)))
        t_ref.append(timed(lambda: reference(r1, r2)))
    share = np.array(t_gemm) / np.array(t_ours)           # per repetition: ours as a share of that GEMM
    speedup = np.array(t_ref) / np.array(t_ours)
    print(f"tokens {args.tokens:,}, {args.layers} layers x {args.d_mlp} neurons, threads {torch.get_num_threads()}, "
          f"{args.reps} interleaved repetitions")
    print(f"plain GEMM      {flops / np.median(t_gemm) / 1e9:7.1f} GFLOP/s  (median {np.median(t_gemm):.3f} s)")
    print(f"ours            {flops / np.median(t_ours) / 1e9:7.1f} GFLOP/s  (median {np.median(t_ours):.3f} s): "
          f"{np.median(share):.0%} of the GEMM, median over repetitions (range {share.min():.0%}-{share.max():.0%};"
          f" target >= 70%)")
    print(f"reference way   {flops / np.median(t_ref) / 1e9:7.1f} GFLOP/s  (median {np.median(t_ref):.3f} s): ours "
          f"is {np.median(speedup):.2f}x faster (range {speedup.min():.2f}-{speedup.max():.2f}; target >= 2x)")

    # the analysis: every seed pair with both rotated baselines
    tokens = args.tokens // 2
    seeds = [list(make_chunks(tokens, units, 11 * s)) for s in range(args.seeds)]
    layouts = [reference_layout(x, args.layers) for x in seeds]
    g = torch.Generator().manual_seed(0)
    rots = [torch.nn.functional.normalize(torch.randn(args.layers, args.d_mlp, args.d_mlp, generator=g), dim=-1)
            for _ in range(args.seeds)]
    t_a, t_r = [], []
    for _ in range(2):
        t_a.append(timed(partial(analysis_ours, seeds, args.layers)))
        t_r.append(timed(partial(analysis_reference, layouts, rots)))
    pairs = args.seeds * (args.seeds - 1) // 2
    print(f"universal-neurons work, {args.seeds} seeds ({pairs} pairs, each with both rotated baselines), "
          f"{tokens:,} tokens: ours {min(t_a):.3f} s, reference way {min(t_r):.3f} s: ours is "
          f"{min(t_r) / min(t_a):.2f}x faster (target >= 2x)")
    del seeds, layouts

    sx, sy = list(make_chunks(20_000, units, 3, mean=100.0, std=1.0)), list(make_chunks(20_000, units, 5,
                                                                                          mean=-50.0, std=0.5))
    x64, y64 = torch.cat(sx).double().numpy(), torch.cat(sy).double().numpy()
    truth = np.corrcoef(x64, y64, rowvar=False)[:units, units:]
    ok = np.isfinite(truth)
    err_ours = np.abs(ours(sx, sy) - truth)[ok].max()
    with np.errstate(invalid="ignore"):
        ref_r = reference(reference_layout(sx, args.layers), reference_layout(sy, args.layers))
    err_ref = np.abs(np.nan_to_num(ref_r, nan=2.0) - truth)[ok].max()   # a NaN r counts as an error of 2
    print(f"stress case (mean/std >= 100): max |r error| ours {err_ours:.1e}, reference way {err_ref:.1e}")
    small, large = rss_of_streaming(args.tokens // 10, units), rss_of_streaming(args.tokens, units)
    print(f"peak RSS streaming {args.tokens // 10:,} tokens: {small:.0f} MB; {args.tokens:,}: {large:.0f} MB "
          f"(ratio {large / small:.2f})")


if __name__ == "__main__":
    main()
