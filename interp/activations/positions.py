"""Which token positions count in activation statistics: ``PromptSet.statistics_mask`` in a form that travels.

Over text, a window's first position and special tokens are outliers shared by every model (Gurnee et al., arXiv
2401.12181, filtered them); cross-seed statistics leave them out by default. ``PositionFilter`` is picklable for a
Dask worker, and a memory-mapped token file travels by its path, not its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PositionFilter:
    """Which token positions count (``PromptSet.statistics_mask``), picklable for a Dask worker: a memory-mapped
    token file travels by its path, not its bytes."""

    path: str | None
    array: np.ndarray | None
    window_start: bool
    special_ids: tuple[int, ...]

    @classmethod
    def of(cls, prompts, keep_first: bool, keep_special: bool) -> PositionFilter | None:
        """The filter of ``prompts``, or None when every position counts (a toy mixture: nothing to read)."""
        start, special = prompts.window_start and not keep_first, () if keep_special else prompts.special_ids
        if not start and not special:
            return None
        tokens = prompts.tokens
        path = getattr(tokens, "filename", None)
        return cls(str(path) if path else None, None if path else np.asarray(tokens), start, tuple(special))

    def mask(self, start: int, stop: int) -> np.ndarray:
        """[row, pos] bool for prompt rows ``start:stop``."""
        tokens = np.load(self.path, mmap_mode="r")[start:stop] if self.path else self.array[start:stop]
        keep = np.ones(tokens.shape, dtype=bool)
        if self.window_start:
            keep[:, 0] = False
        if self.special_ids:
            keep &= ~np.isin(tokens, np.asarray(self.special_ids))
        return keep
