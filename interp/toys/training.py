"""The toy trainer that makes checkpoint series (the bundled ones and users' own).

``train(config, out_dir)`` trains one (run, seed) on a task mixture or a synthetic language (``interp.toys.language``),
saves safetensors checkpoints at log-spaced steps with the config as JSON beside them, and adds them to
``out_dir/manifest.yaml`` (path, step, seed, run, size, sha256, and per-task accuracy or the language's loss at that
step). Deterministic on CPU for a given seed: the model is initialised from ``seed``, and batch ``t`` is a pure
function of (``data_seed``, t) (``data_seed`` defaults to the seed; a fixed one gives every seed the same data).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp.checkpoints.manifest import (
    CheckpointEntry,
    ManifestModel,
    ProcessingEntry,
    RunEntry,
    file_sha256,
    file_size,
    load_manifest,
    save_manifest,
)
from interp.errors import ConfigError
from interp.toys.language import LANGUAGE_EVAL_SEED, LanguageSpec, language_prompts
from interp.toys.tasks import MixtureSpec, MixtureStream, eval_sets
from interp.trust import atomic


@dataclass(frozen=True)
class TrainConfig:
    run: str
    model: dict[str, Any]                # HookedTransformerConfig kwargs, without seed/device/dtype
    mixture: MixtureSpec | None = None   # a task mixture, or
    language: LanguageSpec | None = None  # a synthetic language (exactly one of the two)
    seed: int = 0
    data_seed: int | None = None         # of the batches (default: seed)
    n_steps: int = 1000
    batch_size: int | None = 512         # None: full batch on every task's train split (no background)
    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    n_checkpoints: int = 7               # log-spaced steps in [0, n_steps], 0 and n_steps included
    checkpoint_steps: tuple[int, ...] | None = None  # overrides n_checkpoints
    save_dtype: str = "float32"
    group: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    warmup: int = 0                      # linear warm-up steps
    schedule: str = "constant"           # or "cosine" (to 0 at n_steps)
    decay_matrices_only: bool = False    # weight decay on matrices, not on biases and norms

    def __post_init__(self) -> None:
        if isinstance(self.mixture, dict):
            object.__setattr__(self, "mixture", MixtureSpec.from_dict(self.mixture))
        if isinstance(self.language, dict):
            object.__setattr__(self, "language", LanguageSpec.from_overrides(self.language))
        if (self.mixture is None) == (self.language is None):
            raise ConfigError("TrainConfig needs exactly one of mixture (tasks) and language")
        if self.n_steps < 1:
            raise ConfigError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        vocab = self.mixture.d_vocab if self.mixture is not None else self.language.d_vocab
        if self.model.get("d_vocab") != vocab:
            raise ConfigError(f"model.d_vocab ({self.model.get('d_vocab')}) must equal the data's d_vocab ({vocab})")
        if self.language is not None and self.model.get("n_ctx") != self.language.n_ctx:
            raise ConfigError(f"model.n_ctx ({self.model.get('n_ctx')}) must equal language.n_ctx "
                              f"({self.language.n_ctx})")

    def steps(self) -> list[int]:
        if self.checkpoint_steps is not None:
            return sorted(set(self.checkpoint_steps))
        return log_steps(self.n_steps, self.n_checkpoints)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["mixture"] = self.mixture.to_dict() if self.mixture is not None else None
        d["language"] = self.language.to_dict() if self.language is not None else None
        return d

    def batches(self):
        """batch(step) -> PromptSet: the run's training data as a pure function of (data_seed, step)."""
        from interp.toys.batches import batch_fn

        seed = self.seed if self.data_seed is None else self.data_seed
        return batch_fn(self.mixture, self.language, self.batch_size, seed)


def log_steps(n_steps: int, n: int) -> list[int]:
    """``n`` distinct steps from 0 to ``n_steps``, log-spaced in between."""
    steps = {0, n_steps}
    k = n
    while len(steps) < min(n, n_steps + 1):
        steps = {0, n_steps} | {int(round(x)) for x in np.geomspace(1, n_steps, k - 1)}
        k += 1
    return sorted(steps)


def evaluate(model, mixture: MixtureSpec, split: str = "test") -> dict[str, dict[str, float]]:
    """Per-task label accuracy and loss on a split."""
    import torch

    from interp.maths.losses import label_accuracy, masked_next_token_loss

    device = next(model.parameters()).device
    out = {}
    with torch.inference_mode():
        for name, ps in eval_sets(mixture, split).items():
            toks = torch.as_tensor(ps.tokens, device=device)
            logits = model(toks)
            out[name] = {"accuracy": label_accuracy(logits, toks), "loss": float(masked_next_token_loss(
                logits, toks, torch.as_tensor(ps.loss_mask, device=device)))}
    return out


def checkpoint_metrics(model, config: TrainConfig) -> dict[str, float]:
    """What the manifest records with a checkpoint: ``<task>/accuracy`` and ``<task>/loss`` on the test splits, or
    a language's ``language/loss`` on held-out sequences."""
    import torch

    from interp.maths.losses import masked_next_token_loss

    if config.mixture is not None:
        return {f"{task}/{k}": round(v, 6) for task, m in evaluate(model, config.mixture).items() for k, v in m.items()}
    device = next(model.parameters()).device
    ps = language_prompts(config.language, 256, np.random.default_rng(LANGUAGE_EVAL_SEED))
    with torch.inference_mode():
        toks, mask = torch.as_tensor(ps.tokens, device=device), torch.as_tensor(ps.loss_mask, device=device)
        return {"language/loss": round(float(masked_next_token_loss(model(toks), toks, mask)), 6)}


def _optimiser(model, config: TrainConfig):
    import math

    import torch

    params = list(model.parameters())
    if config.decay_matrices_only:
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": config.weight_decay}]
    opt = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    n, warm = config.n_steps, max(config.warmup, 1)

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warm) if config.warmup else 1.0
        return ramp * (0.5 * (1 + math.cos(math.pi * min(step, n) / n)) if config.schedule == "cosine" else 1.0)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train(config: TrainConfig, out_dir: Path, device: str = "cpu", progress: bool = True) -> list[CheckpointEntry]:
    """Train one (run, seed); returns the manifest entries written."""
    import torch
    from tqdm.auto import tqdm

    from interp.checkpoints.loading import build_model, save_checkpoint
    from interp.maths.losses import masked_next_token_loss

    out_dir = Path(out_dir)
    seed_dir = out_dir / config.run / f"seed{config.seed}"
    data = {"mixture": config.mixture.to_dict()} if config.mixture is not None else {
        "language": config.language.to_dict()}
    atomic.write_text(seed_dir / "config.json", json.dumps({"model": config.model, **data,
                                                            "train": config.to_json()}, indent=1))
    torch.manual_seed(config.seed)
    model = build_model({**config.model, "seed": config.seed}, device=device)
    model.train()
    opt, schedule = _optimiser(model, config)
    full = None
    if config.mixture is not None and config.batch_size is None:   # full batch on every task's train split
        full = MixtureStream(config.mixture, 1, config.seed).full_train_set()
    batch_at = config.batches()
    save_at = set(config.steps())
    entries: list[CheckpointEntry] = []
    bar = tqdm(range(config.n_steps + 1), desc=f"train {config.run} seed {config.seed}", disable=not progress,
               leave=False)
    for step in bar:
        if step in save_at:
            model.eval()
            path = seed_dir / f"step{step:06d}.safetensors"
            metrics = checkpoint_metrics(model, config)
            save_checkpoint(model, path, dtype=config.save_dtype,
                            metadata={"run": config.run, "seed": str(config.seed), "step": str(step)})
            entries.append(CheckpointEntry(seed=config.seed, step=step, path=str(path.relative_to(out_dir)),
                                           sha256=file_sha256(path), size=file_size(path), metrics=metrics))
            model.train()
        if step == config.n_steps:
            break
        batch = full if full is not None else batch_at(step)
        toks, mask = torch.as_tensor(batch.tokens, device=device), torch.as_tensor(batch.loss_mask, device=device)
        loss = masked_next_token_loss(model(toks), toks, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    _update_manifest(out_dir, config, entries)
    return entries


def _update_manifest(out_dir: Path, config: TrainConfig, entries: list[CheckpointEntry]) -> None:
    """Read-modify-write under an exclusive file lock, so trainings running in parallel into one folder (one process
    per seed, as ``analyses/make_bundled.py`` does) never lose each other's entries."""
    import fcntl

    with open(out_dir / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge_into_manifest(out_dir / "manifest.yaml", config, entries)


def _merge_into_manifest(path: Path, config: TrainConfig, entries: list[CheckpointEntry]) -> None:
    model = load_manifest(path).manifest if path.exists() else ManifestModel(runs=[])
    runs = {r.name: r for r in model.runs}
    mixture = config.mixture.to_dict() if config.mixture is not None else None
    language = config.language.to_dict() if config.language is not None else None
    run = runs.get(config.run) or RunEntry(name=config.run, model=config.model, mixture=mixture, language=language,
                                           processing=ProcessingEntry(dtype="float32"), group=config.group,
                                           labels=config.labels, checkpoints=[])
    if run.model != config.model or run.mixture != mixture or run.language != language:
        raise ConfigError(f"{path}: run {config.run!r} already exists with a different model or mixture; "
                          f"use another run name")
    kept = [c for c in run.checkpoints if c.seed != config.seed]
    run.checkpoints = sorted(kept + entries, key=lambda c: (c.seed, c.step))
    runs[config.run] = run
    save_manifest(ManifestModel(description=model.description, runs=list(runs.values())), path)
