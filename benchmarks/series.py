"""The default pair (neuron-stats + universal-neurons) on a PolyPythia-70m-shaped series, against the forward floor.

    python benchmarks/series.py [--tokens 48128] [--seeds 3] [--device cpu]

Builds, with ``transformers`` from a config (no download), random GPT-NeoX models of Pythia-70m's shape (d_model 512,
6 layers, d_mlp 2,048, 8 heads, vocabulary 50,304, rotary on a quarter of each head, parallel residual), ``--seeds``
seeds x 2 revisions saved in float16 as a hub cache, and a token file of ``--tokens`` random tokens in windows of
256. Then, in one run:

- the floor: ``transformers``' own forward pass (float32, batches of 16 windows) over the tokens, every checkpoint;
- ``interp analyze -a neuron-stats -a universal-neurons`` on the same series and tokens, in a subprocess (its peak
  RSS read from /proc), with the activation cache kept to weigh it;
- each analyzer's time from the run's record.

Prints the floor, the pair's wall time and its ratio to the floor (target <= 1.5), each analyzer's compute time and
ratio, the bytes written to the activation cache (target: 0 for universal-neurons' lockstep pass), and the peak RSS
against 3 x the models held at once plus universal-neurons' float64 sums (the formula is printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = dict(vocab_size=50304, hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048,
             rotary_pct=0.25, use_parallel_residual=True, max_position_embeddings=2048, tie_word_embeddings=False)
WINDOW = 256


def build(root: Path, seeds: int) -> list[tuple[int, int, Path]]:
    """``models--bench--neox70m-seed<S>`` hub caches with revisions step0 and step1000: (seed, step, snapshot)."""
    import torch
    import transformers

    out = []
    for seed in range(seeds):
        for step in (0, 1000):
            torch.manual_seed(seed * 7919 + step)
            model = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**SHAPE)).to(torch.float16)
            repo = root / f"models--bench--neox70m-seed{seed}"
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp)
                files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
            commit = hashlib.sha1(repr(sorted((n, hashlib.sha256(b).hexdigest()) for n, b in files.items()))
                                  .encode()).hexdigest()
            snap = repo / "snapshots" / commit
            snap.mkdir(parents=True)
            for name, data in files.items():
                (snap / name).write_bytes(data)
            (repo / "refs").mkdir(exist_ok=True)
            (repo / "refs" / f"step{step}").write_text(commit)
            out.append((seed, step, snap))
    return out


def floor(snapshots: list[tuple[int, int, Path]], tokens: np.ndarray, device: str) -> float:
    """Seconds of transformers' own forward pass over ``tokens`` on every checkpoint (loading not counted)."""
    import torch
    import transformers

    total = 0.0
    for _, _, snap in snapshots:
        model = transformers.AutoModelForCausalLM.from_pretrained(snap, local_files_only=True,
                                                                  torch_dtype=torch.float32).to(device).eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(tokens), 16):
                model(torch.as_tensor(tokens[s:s + 16], device=device))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        total += time.perf_counter() - t0
        del model
    return total


def gemm_rate(device: str) -> float:
    """This machine's float32 GEMM rate (FLOP/s) on the block shape the cross-seed sums use: a layer's 2,048 neurons
    against another's over 1,024 tokens (best of 5)."""
    import torch

    a = torch.randn(2048, 1024, device=device)
    b = torch.randn(1024, 2048, device=device)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * 2048 * 1024 * 2048 / best


def correlation_flops(seeds: int, tokens: int, layers: int = 6, d_mlp: int = 2048) -> float:
    """universal-neurons' arithmetic per step: every seed pair's cross sums over all neurons (2 N^2 T) and each
    seed's per-layer Gram for the rotated baselines (1.25 d^2 T)."""
    n = layers * d_mlp
    return seeds * (seeds - 1) / 2 * 2 * n * n * tokens + seeds * layers * 1.25 * d_mlp * d_mlp * tokens


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _status(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field in bytes (0 once the process is gone)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_pair(root: Path, tokens_file: Path, out: Path, device: str) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes of its process tree, sampled every 0.2 s) of ``interp analyze`` on the series, in
    a subprocess."""
    cmd = [sys.executable, "-m", "interp.cli", "analyze", "--checkpoint-dir", str(root), "--tokens",
           str(tokens_file), "-a", "neuron-stats", "-a", "universal-neurons", "--out", str(out), "--device", device,
           "--keep-cache", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    peak = 0
    while proc.poll() is None:
        # the work runs in spawned worker processes: the run's memory is the whole tree's resident set
        peak = max(peak, sum(_status(pid, "VmRSS:") for pid in _tree(proc.pid)))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"interp analyze failed: {proc.stderr.read()[-2000:]}")
    return wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=48128)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "series"
        snaps = build(root, args.seeds)
        tokens = np.random.default_rng(0).integers(0, SHAPE["vocab_size"], size=(args.tokens // WINDOW, WINDOW))
        tokens_file = Path(tmp) / "tokens.npy"
        np.save(tokens_file, tokens.astype(np.int32))
        t_floor = floor(snaps, tokens, args.device)
        wall, peak = run_pair(root, tokens_file, Path(tmp) / "out", args.device)
        record = json.loads((Path(tmp) / "out" / "run.json").read_text())
        cache = sum(p.stat().st_size for p in (Path(tmp) / "out" / "cache").rglob("*.h5"))
        params = sum(np.prod(s) for s in [(SHAPE["vocab_size"], 512)] * 2) + 6 * (4 * 512 * 512 + 2 * 512 * 2048)
    timings = record["timings"]
    n_ck = len(snaps)
    counted = tokens.size * (WINDOW - 1) // WINDOW             # a window's first position is left out
    t_corr = 2 * correlation_flops(args.seeds, counted) / gemm_rate(args.device)   # two steps
    print(f"series: {args.seeds} seeds x 2 revisions of a GPT-NeoX 70m shape, {tokens.size:,} tokens each")
    print(f"floor (transformers forward, {n_ck} checkpoints): {t_floor:.1f} s")
    print(f"neuron-stats + universal-neurons, wall: {wall:.1f} s = {wall / t_floor:.2f} x the floor (target <= 1.5; "
          f"includes loading, verifying and hashing every checkpoint)")
    print(f"the correlation's own floor: {2 * correlation_flops(args.seeds, counted):.3g} FLOP at this machine's "
          f"float32 GEMM rate = {t_corr:.1f} s; forward + correlation floors = {t_floor + t_corr:.1f} s, the pair at "
          f"{wall / (t_floor + t_corr):.2f} x that")
    for name in ("neuron-stats", "universal-neurons"):
        t = timings.get(name, {})
        print(f"  {name}: compute {t.get('compute_s', 0):.1f} s = {t.get('compute_s', 0) / t_floor:.2f} x the floor, "
              f"{t.get('units_run', 0)} units")
    held = args.seeds * 4 * params
    sums = args.seeds * (args.seeds - 1) // 2 * 36 * 8 * 2048 * 2048
    print(f"bytes written to the activation cache: {cache:,} ({cache / tokens.size:.1f} per token)")
    print(f"peak RSS {peak / 2**30:.2f} GB; 3 x models held ({args.seeds} x {4 * params / 2**20:.0f} MB float32) + "
          f"float64 sums ({sums / 2**30:.2f} GB, at most universal-neurons' memory_gb) = "
          f"{(3 * held + min(sums, 4 * 2**30)) / 2**30:.2f} GB")


if __name__ == "__main__":
    main()
