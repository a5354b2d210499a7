"""interp: mechanistic interpretability over series of trained checkpoints.

The public API is lazy: ``import interp`` imports neither torch nor TransformerLens; they load when first used.

    >>> import interp
    >>> series = interp.load_series()                       # the tiny series bundled with interp
    >>> sorted({ref.run for ref in series.refs()})
    ['modadd', 'narrow', 'neox-narrow', 'neox-wide', 'universal', 'wide']
    >>> report = interp.analyze(analyzers=["neuron-stats"])  # every checkpoint -> ./interp-results  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "analyze": "interp.api",
    "load_series": "interp.api",
    "RunOptions": "interp.api",
    "PromptSource": "interp.prompts.source",
    "load_result": "interp.api",
    "train": "interp.toys.training",
    "TrainConfig": "interp.toys.training",
    "MixtureSpec": "interp.toys.tasks",
    "TaskSpec": "interp.toys.tasks",
    "Processing": "interp.checkpoints.manifest",
    "load_model": "interp.checkpoints.loading",
    "load_hf_folder": "interp.checkpoints.loading",
    "load_checkpoint": "interp.checkpoints.loading",
    "InterpError": "interp.errors",
    "write_report": "interp.report.build",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")
