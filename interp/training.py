"""The toy trainer that makes checkpoint series (the bundled ones and users' own).

``train(config, out_dir)`` trains one (run, seed) on a task mixture, saves safetensors checkpoints at log-spaced
steps with the config as JSON beside them, and adds them to ``out_dir/manifest.yaml`` (path, step, seed, run, size,
sha256, and the per-task test accuracy at that step). Deterministic on CPU for a given seed: the model is initialised
from ``seed``, and batch ``t`` is a pure function of (seed, t).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp import atomic
from interp.errors import ConfigError
from interp.manifest import (CheckpointEntry, ManifestModel, ProcessingEntry, RunEntry, file_sha256, file_size,
                             load_manifest, save_manifest)
from interp.tasks import MixtureSpec, MixtureStream, eval_sets


@dataclass(frozen=True)
class TrainConfig:
    run: str
    model: dict[str, Any]                # HookedTransformerConfig kwargs, without seed/device/dtype
    mixture: MixtureSpec
    seed: int = 0
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

    def __post_init__(self) -> None:
        if isinstance(self.mixture, dict):
            object.__setattr__(self, "mixture", MixtureSpec.from_dict(self.mixture))
        if self.n_steps < 1:
            raise ConfigError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.model.get("d_vocab") != self.mixture.d_vocab:
            raise ConfigError(f"model.d_vocab ({self.model.get('d_vocab')}) must equal mixture.d_vocab "
                              f"({self.mixture.d_vocab})")

    def steps(self) -> list[int]:
        if self.checkpoint_steps is not None:
            return sorted(set(self.checkpoint_steps))
        return log_steps(self.n_steps, self.n_checkpoints)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["mixture"] = self.mixture.to_dict()
        return d


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

    from interp.metrics import label_accuracy, masked_next_token_loss

    out = {}
    device = next(model.parameters()).device
    with torch.inference_mode():
        for name, ps in eval_sets(mixture, split).items():
            toks = torch.as_tensor(ps.tokens, device=device)
            logits = model(toks)
            out[name] = {"accuracy": label_accuracy(logits, toks),
                         "loss": float(masked_next_token_loss(logits, toks, torch.as_tensor(ps.loss_mask, device=device)))}
    return out


def train(config: TrainConfig, out_dir: Path, device: str = "cpu", progress: bool = True) -> list[CheckpointEntry]:
    """Train one (run, seed); returns the manifest entries written."""
    import torch
    from tqdm.auto import tqdm

    from interp.loading import build_model, save_checkpoint
    from interp.metrics import masked_next_token_loss

    out_dir = Path(out_dir)
    seed_dir = out_dir / config.run / f"seed{config.seed}"
    seed_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(seed_dir / "config.json", json.dumps(
        {"model": config.model, "mixture": config.mixture.to_dict(), "train": config.to_json()}, indent=1))

    torch.manual_seed(config.seed)
    model = build_model({**config.model, "seed": config.seed}, device=device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=config.betas)
    stream = MixtureStream(config.mixture, config.batch_size or 1, config.seed)
    full = stream.full_train_set() if config.batch_size is None else None
    if full is not None:
        full_t = (torch.as_tensor(full.tokens, device=device), torch.as_tensor(full.loss_mask, device=device))

    save_at = set(config.steps())
    entries: list[CheckpointEntry] = []

    def checkpoint(step: int) -> None:
        path = seed_dir / f"step{step:06d}.safetensors"
        model.eval()
        metrics = {f"{task}/{k}": round(v, 6) for task, m in evaluate(model, config.mixture).items()
                   for k, v in m.items()}
        model.train()
        save_checkpoint(model, path, dtype=config.save_dtype, metadata={"run": config.run, "seed": str(config.seed),
                                                                        "step": str(step)})
        entries.append(CheckpointEntry(seed=config.seed, step=step, path=str(path.relative_to(out_dir)),
                                       sha256=file_sha256(path), size=file_size(path), metrics=metrics))

    bar = tqdm(range(config.n_steps + 1), desc=f"train {config.run} seed {config.seed}", disable=not progress,
               leave=False)
    for step in bar:
        if step in save_at:
            checkpoint(step)
        if step == config.n_steps:
            break
        if full is not None:
            toks, mask = full_t
        else:
            batch = stream.batch(step)
            toks, mask = torch.as_tensor(batch.tokens, device=device), torch.as_tensor(batch.loss_mask, device=device)
        loss = masked_next_token_loss(model(toks), toks, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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
    run = runs.get(config.run) or RunEntry(name=config.run, model=config.model, mixture=config.mixture.to_dict(),
                                           processing=ProcessingEntry(dtype="float32"), group=config.group,
                                           labels=config.labels, checkpoints=[])
    if run.model != config.model or run.mixture != config.mixture.to_dict():
        raise ConfigError(f"{path}: run {config.run!r} already exists with a different model or mixture; "
                          f"use another run name")
    kept = [c for c in run.checkpoints if c.seed != config.seed]
    run.checkpoints = sorted(kept + entries, key=lambda c: (c.seed, c.step))
    runs[config.run] = run
    save_manifest(ManifestModel(description=model.description, runs=list(runs.values())), path)
