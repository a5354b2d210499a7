"""Bit-reproducible torch computations for a block of code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels for a block (restored after); also a decorator (``@deterministic()``): multi-threaded
    CPU backward passes (the embedding's scatter-add) otherwise differ run to run in the last bits, and analyzers
    must be reproducible bit for bit. The flag is process-wide: Dask workers should run one thread each
    (``DaskExecutor``'s default)."""
    import torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
