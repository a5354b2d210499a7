"""Train the tiny checkpoint series bundled with interp (``interp/data/bundled/``).

Run from the repository root (about 15 minutes on 2 CPU cores)::

    python analyses/make_bundled.py            # writes interp/data/bundled/ and its manifest.yaml
    python analyses/make_bundled.py --out DIR  # somewhere else

Two families, both trained with ``interp.toys.training.train`` and stored in float16 (the bundle must stay under 10 MB):

**Task competition** (runs ``narrow`` and ``wide``, seeds 0-2, 8 log-spaced steps of 3,000). A background bigram
language over 32 tokens, one *common* memorisation task (a fixed random lookup ``TOK1 TOK2 -> LABEL`` over 16
operand tokens = 256 facts, 8 labels) injected into 30% of sequences, and one *rare* lookup task (24 operands = 576
facts, 8 labels) injected into 5%. Memorisation makes capacity the bottleneck: the number of facts a one-layer model
can store grows with d_mlp, and the rare task, seen ~12x less often per fact, loses the competition for the few
neurons of the narrow model (d_mlp 8) while the wide one (d_mlp 256) stores both.

Sweep that chose it (one layer, 4 heads, lr 3e-3, AdamW wd 0.1, batch 512, 3,000 steps; rare-task test accuracy at
the last step; common-task accuracy >= 0.95 in every row):

=====================  ========  =====  ========  ===========  =========
common / rare facts    d_model   freq   d_mlp     rare acc     seed
=====================  ========  =====  ========  ===========  =========
256 / 144              64        0.02   16 / 256  0.90 / 1.00  0
576 / 256 (24, 16)     64        0.03   8 / 16    0.74 / 0.80  0   (narrow not worse on the rare task)
256 / 576              64        0.02   16 / 256  0.33 / 0.67  0   (wide has not learned it either)
256 / 576              64        0.05   16 / 256  0.54 / 0.99  0
256 / 576              32        0.05   16 / 256  0.34 / 0.89  0
256 / 576              64        0.05   8 / 256   see README  0-2  (chosen)
=====================  ========  =====  ========  ===========  =========

(The first line is the lesson: when the rare task has few facts, even a narrow model has room for it.)

**Modular addition** (run ``modadd``, seeds 0-2): ``a + b mod 59`` over all 59 tokens, one layer, d_model 64,
d_mlp 256, 4 heads, no LayerNorm, full batch on half of the 3,481 pairs, AdamW lr 3e-3, wd 1.0, betas (0.9, 0.98);
it groks around step 400 (measured). 8 log-spaced checkpoints through step 1,000 catch memorisation, the grokking
transition and the clean-up.
"""

from __future__ import annotations

import argparse
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from interp import MixtureSpec, TaskSpec, TrainConfig, train
from interp.toys.language import LanguageSpec

BUNDLE = Path(__file__).resolve().parents[1] / "interp" / "data" / "bundled"
SEEDS = (0, 1, 2)
WIDTHS = {"narrow": 8, "wide": 256}
RARE_FREQUENCY = 0.05


def competition_mixture(rare_frequency: float = RARE_FREQUENCY, injection_gap: int = 1) -> MixtureSpec:
    return MixtureSpec(d_vocab=96, n_background=32, tasks=(
        TaskSpec("common", "lookup", n_operands=16, n_labels=8, frequency=0.3, seed=1),
        TaskSpec("rare", "lookup", n_operands=24, n_labels=8, frequency=rare_frequency, seed=2,
                 injection_gap=injection_gap)))


def competition_model(d_mlp: int, d_model: int = 64) -> dict:
    return dict(n_layers=1, d_model=d_model, d_mlp=d_mlp, n_heads=4, d_head=d_model // 4, n_ctx=3, d_vocab=96,
                act_fn="relu", normalization_type=None)


def competition_config(run: str, d_mlp: int, seed: int, n_steps: int = 3000, rare_frequency: float = RARE_FREQUENCY,
                       injection_gap: int = 1, n_checkpoints: int = 8) -> TrainConfig:
    return TrainConfig(run=run, model=competition_model(d_mlp), mixture=competition_mixture(rare_frequency,
                                                                                            injection_gap),
                       seed=seed, n_steps=n_steps, batch_size=512, lr=3e-3, weight_decay=0.1,
                       n_checkpoints=n_checkpoints, save_dtype="float16", group="competition",
                       labels={"d_mlp": d_mlp, "rare_frequency": rare_frequency, "role": run})


def modadd_config(seed: int, p: int = 59, n_steps: int = 1000, n_checkpoints: int = 8) -> TrainConfig:
    mixture = MixtureSpec(d_vocab=p, n_background=0, tasks=(
        TaskSpec("modadd", "modular_addition", n_operands=p, frequency=1.0, train_fraction=0.5, seed=0),))
    model = dict(n_layers=1, d_model=64, d_mlp=256, n_heads=4, d_head=16, n_ctx=3, d_vocab=p, act_fn="relu",
                 normalization_type=None)
    return TrainConfig(run="modadd", model=model, mixture=mixture, seed=seed, n_steps=n_steps, batch_size=None,
                       lr=3e-3, weight_decay=1.0, n_checkpoints=n_checkpoints, save_dtype="float16",
                       group="modular-addition", labels={"p": p})


def universal_language() -> LanguageSpec:
    return LanguageSpec(d_vocab=256, n_ctx=64, n_classes=1, zipf=1.0, p_successor=0.5, seed=0)


def universal_config(seed: int, n_steps: int = 3000, lr: float = 1e-2,
                     checkpoint_steps: tuple[int, ...] = (0, 300, 1000, 3000)) -> TrainConfig:
    model = dict(n_layers=2, d_model=64, d_mlp=256, n_heads=4, d_head=16, n_ctx=64, d_vocab=256, act_fn="relu",
                 normalization_type="LN", initializer_range=0.02)
    # one batch stream for every seed (data_seed): seeds differ in their initialisation only, as in Gurnee et al.
    return TrainConfig(run="universal", model=model, language=universal_language(), seed=seed, data_seed=1000,
                       n_steps=n_steps, batch_size=64, lr=lr, weight_decay=0.1, betas=(0.9, 0.98), warmup=100,
                       schedule="cosine", decay_matrices_only=True, checkpoint_steps=checkpoint_steps,
                       save_dtype="float16", group="universal", labels={"lr": lr})


FAMILIES = {"competition": lambda: [competition_config(run, d_mlp, seed) for run, d_mlp in WIDTHS.items()
                                    for seed in SEEDS],
            "modadd": lambda: [modadd_config(seed) for seed in SEEDS],
            "universal": lambda: [universal_config(seed) for seed in SEEDS]}


def all_configs(only: str | None = None) -> list[TrainConfig]:
    return [c for name, make in FAMILIES.items() if only in (None, name) for c in make()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=BUNDLE)
    ap.add_argument("--only", choices=sorted(FAMILIES), default=None)
    ap.add_argument("--jobs", type=int, default=2, help="trainings in parallel, one thread each")
    args = ap.parse_args()
    if args.only is None and args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    configs = all_configs(args.only)
    with ProcessPoolExecutor(args.jobs) as pool:
        for line in pool.map(_train_one, configs, [args.out] * len(configs)):
            print(line, flush=True)
    (args.out / ".manifest.lock").unlink(missing_ok=True)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"bundle: {total / 1e6:.2f} MB in {args.out}")


def _train_one(config: TrainConfig, out: Path) -> str:
    import torch

    torch.set_num_threads(1)   # one thread per training: bit-reproducible, and the jobs do not contend
    t0 = time.time()
    entries = train(config, out, progress=False)
    acc = {k: v for k, v in entries[-1].metrics.items() if k.endswith("accuracy")}
    return f"{config.run} seed {config.seed}: {acc} ({time.time() - t0:.0f} s)"


if __name__ == "__main__":
    main()
