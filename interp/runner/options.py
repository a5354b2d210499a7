"""``RunOptions``: how ``analyze`` runs (not what it computes: that is each analyzer's config).

The defaults are written here only: the CLI reads them from this class for its flags and help.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from interp.config import Options, option
from interp.errors import ConfigError
from interp.prompts.source import PromptSource

if TYPE_CHECKING:
    from interp.runner.context import ContextSettings

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class RunOptions(Options):
    """How ``analyze`` runs: where results go, the device, batch sizes, the prompts, and where units execute."""

    out_dir: Path = Path("interp-results")
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    batch_size: int = option(512, ge=1)
    # and at most this many tokens per forward pass: 512 prompts of 2,048 tokens would be 200 GB of logits at a
    # 50k vocabulary, and even at n_ctx 64 passes of 8k tokens ran 2.6x faster than 32k here (cache-resident)
    batch_tokens: int = option(8192, ge=1)
    cache_dir: Path | None = None      # default: out_dir / "cache"
    # of cached activations (gradients are always float32): float16 halves the bytes against float32 and keeps about
    # 3 significant digits; bfloat16 keeps float32's range with 2-3 digits
    storage_dtype: Literal["float32", "float16", "bfloat16"] = "float16"
    prompts: PromptSource = PromptSource()
    tasks: Path | None = None          # a task file: JSONL of task, prompt, answer (interp.prompts.task_file)
    concepts: Path | None = None       # a concepts file: JSONL of concept, prompt, value, period
    runs: tuple[str, ...] | None = None
    progress: bool = True
    allow_pickle: bool = False         # read pickle checkpoints (.pt, .bin), with torch's weights_only loader
    nonfinite: Literal["raise", "keep"] = "raise"   # NaN/inf in weights or activations: stop, or keep and count
    dask: bool = False                 # run units on a local Dask cluster of worker processes
    dask_address: str | None = None    # run units on this existing Dask scheduler (workers share the filesystem)
    retries: int = option(2, ge=0)     # per job, on a Dask cluster (a dead worker's job goes to another)
    keep_cache: bool = False           # keep the activation cache after the run (default: remove it, say how much)
    disk_budget_gb: float | None = option(None, gt=0)   # refuse a run whose activation cache would exceed this
    # processes running jobs side by side on this machine (None: as many as there are usable cores, at most 4, on a
    # CPU; 1 on a GPU)
    workers: int | None = option(None, ge=1)
    # torch threads per process (None: the cores this process may use, shared among a local cluster's workers;
    # interp.runner.threads)
    threads: int | None = option(None, ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not DEVICE.fullmatch(self.device):
            raise ConfigError(f"RunOptions.device = {self.device!r}: must be auto, cpu, mps, cuda or cuda:N")
        if self.dask and self.dask_address:
            raise ConfigError("RunOptions: give dask=True (a local cluster) or dask_address (an existing "
                              "scheduler), not both")

    @property
    def cache_root(self) -> Path:
        return self.cache_dir or self.out_dir / "cache"

    def context_settings(self, device: str) -> ContextSettings:
        from interp.activations.cache import CacheSettings
        from interp.runner.context import ContextSettings

        return ContextSettings(CacheSettings(self.cache_root, self.batch_size, self.storage_dtype, self.nonfinite,
                                             self.batch_tokens),
                               device, self.prompts, self.allow_pickle, self.progress, self.tasks, self.concepts)
