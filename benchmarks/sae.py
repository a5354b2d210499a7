"""SAE fitting: interp's loop vs sae-lens's own ``SAETrainer`` on the same activations.

    python benchmarks/sae.py [--steps 1500]

Activations: a synthetic circle (4,096 points in R^64, normalised). Both train the same sae-lens ``TopKTrainingSAE``
(d_sae 64, k 2) and ``StandardTrainingSAE`` (d_sae 32, L1 0.3) for the same number of steps and batch size;
explained variance is measured by interp's own metric on all points. Prints tokens/s of each and the ratio
(target >= 1x at equal or better explained variance).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 512


def sae_lens_fit(x: np.ndarray, spec, steps: int):
    from sae_lens import LoggingConfig, SAETrainer
    from sae_lens.config import SAETrainerConfig

    from interp.analyzers.sae_manifold.sae_fit import build_sae

    torch.manual_seed(0)
    sae = build_sae(spec, x.shape[1])
    data = torch.as_tensor(x, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)

    def provider():
        while True:
            yield data[torch.randint(0, len(data), (BATCH,), generator=g)]

    cfg = SAETrainerConfig(total_training_samples=steps * BATCH, train_batch_size_samples=BATCH, lr=3e-3,
                           lr_end=3e-3, device="cpu", logger=LoggingConfig(log_to_wandb=False))
    return SAETrainer(cfg=cfg, sae=sae, data_provider=provider()).fit()


def main() -> None:
    import os
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")   # SAETrainer's progress bar
    from interp.analyzers.sae_manifold.sae_fit import SAESpec, encode, fit_sae, normalise
    from interp.maths.manifolds import circle

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    x = normalise(circle(n=4096, d=64, seed=0).points)
    tokens = args.steps * BATCH
    for text in ("topk:64:2", "relu:32:0.3"):
        spec = SAESpec.parse(text)
        fit_sae(x, spec, steps=20)
        sae_lens_fit(x, spec, 20)
        t_ours, t_theirs = [], []
        for _ in range(3):   # interleaved repetitions, best of each (the machine is shared)
            t = time.perf_counter()
            ours = fit_sae(x, spec, steps=args.steps, batch_size=BATCH)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            theirs = sae_lens_fit(x, spec, args.steps)
            t_theirs.append(time.perf_counter() - t)
        t_ours, t_theirs = min(t_ours), min(t_theirs)

        def ev(sae):
            _, recon, _ = encode(sae, x)
            return 1 - ((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()

        print(f"{text}: interp {tokens / t_ours:,.0f} tok/s (EV {ev(ours):.3f}); SAETrainer {tokens / t_theirs:,.0f} "
              f"tok/s (EV {ev(theirs):.3f}); speed ratio {t_theirs / t_ours:.2f}x (target >= 1)")


if __name__ == "__main__":
    main()
