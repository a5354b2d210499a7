"""interp: mechanistic interpretability over series of trained checkpoints.

The public API is lazy: ``import interp`` imports neither torch nor TransformerLens; they load when first used.

    >>> import interp
    >>> series = interp.load_series()              # the tiny bundled series      # doctest: +SKIP
    >>> report = interp.analyze(analyzers=["neuron-stats"])                     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "analyze": "interp.api",
    "load_series": "interp.api",
    "RunOptions": "interp.api",
    "PromptSource": "interp.prompts",
    "load_result": "interp.api",
    "train": "interp.training",
    "TrainConfig": "interp.training",
    "MixtureSpec": "interp.tasks",
    "TaskSpec": "interp.tasks",
    "Processing": "interp.manifest",
    "load_model": "interp.loading",
    "load_hf_folder": "interp.loading",
    "load_checkpoint": "interp.loading",
    "InterpError": "interp.errors",
    "write_report": "interp.report.build",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")
