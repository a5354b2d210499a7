"""The prompt contract every source produces and every consumer reads: ``PromptSet``.

A prompt set is token rows with, per prompt, the task it belongs to (or -1: background text, no task) and which
next-token predictions are scored. Whatever the source (a toy task mixture, a token file, text, a task file), an
analyzer sees only this.

Positions of a task prompt: its *label position* is the prompt's last token, whose logits predict the answer's
first token; the answer's tokens follow it and are the scored predictions (``loss_mask``); rows of a task file are
right-padded after the answer (causal attention: padding never changes an earlier position, and no padded position
is scored). Positions of text: the first position of a window and special tokens (BOS, EOS, padding) carry
activations unlike any other token's (real models park attention and norms there), so statistics over text leave
them out by default (``statistics_mask``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from interp.errors import ConfigError


@dataclass(frozen=True)
class PromptSet:
    """Prompts with their labels. ``tokens``: [prompt, pos] integers (int64 from a task mixture; a token file's own
    dtype, memory-mapped: consumers widen each batch); ``task_id``: [prompt] index into ``task_names``
    (-1 = background); ``loss_mask``: [prompt, pos-1] which next-token predictions are scored."""

    tokens: np.ndarray
    task_id: np.ndarray
    loss_mask: np.ndarray
    task_names: tuple[str, ...] = field(default=())
    # token ids the tokenizer marks special (BOS, EOS, padding); and whether position 0 starts a window of text
    # (its activations are outliers on real models) rather than being a real operand (the toy tasks)
    special_ids: tuple[int, ...] = field(default=())
    window_start: bool = False

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def digest(self) -> str:
        """Content hash: the cache key of anything computed on these prompts. Computed once per (immutable) set:
        every cache lookup asks for it, and hashing scales with the number of tokens."""
        if "_digest" not in self.__dict__:
            extra = (self.special_ids, self.window_start) if self.special_ids or self.window_start else ()
            object.__setattr__(self, "_digest", content_digest((self.tokens, self.task_id, self.loss_mask),
                                                               self.task_names, extra))
        return self.__dict__["_digest"]

    def token_range(self) -> tuple[int, int]:
        """(smallest, largest) token id, read in row blocks once per set (a token file is never loaded whole)."""
        if "_range" not in self.__dict__:
            lo, hi = np.iinfo(np.int64).max, np.iinfo(np.int64).min
            rows = max(1, (1 << 24) // max(1, self.tokens[:1].nbytes))
            for i in range(0, len(self.tokens), rows):
                block = self.tokens[i:i + rows]
                if block.size:
                    lo, hi = min(lo, int(block.min())), max(hi, int(block.max()))
            object.__setattr__(self, "_range", (lo, hi))
        return self.__dict__["_range"]

    def groups(self) -> list[tuple[str, np.ndarray]]:
        """(name, prompt rows) of every task present, then ``background`` (task id -1) if present."""
        out = [(t, np.flatnonzero(self.task_id == i)) for i, t in enumerate(self.task_names)]
        out.append(("background", np.flatnonzero(self.task_id < 0)))
        return [(n, rows) for n, rows in out if len(rows)]

    def subset(self, idx: np.ndarray | slice) -> PromptSet:
        return PromptSet(self.tokens[idx], self.task_id[idx], self.loss_mask[idx], self.task_names,
                         self.special_ids, self.window_start)

    @staticmethod
    def concat(parts: list[PromptSet]) -> PromptSet:
        names = parts[0].task_names
        if any(p.task_names != names for p in parts):
            raise ConfigError("cannot concatenate prompt sets with different task_names")
        arrays = (np.concatenate([getattr(p, f) for p in parts]) for f in ("tokens", "task_id", "loss_mask"))
        return PromptSet(*arrays, names, parts[0].special_ids, parts[0].window_start)

    def label_positions(self) -> np.ndarray:
        """[prompt] the position whose logits predict the first scored token: a task prompt's last token (-1 for a
        row with nothing scored)."""
        scored = np.asarray(self.loss_mask)
        first = scored.argmax(axis=1)
        return np.where(scored.any(axis=1), first, -1)

    def statistics_mask(self, tokens: np.ndarray, keep_first: bool = False, keep_special: bool = False) -> np.ndarray:
        """[prompt, pos] which positions of ``tokens`` (a block of this set's rows) count in activation statistics:
        all but the window's first position (text) and special tokens, unless kept."""
        mask = np.ones(tokens.shape, dtype=bool)
        if self.window_start and not keep_first:
            mask[:, 0] = False
        if self.special_ids and not keep_special:
            mask &= ~np.isin(tokens, np.asarray(self.special_ids))
        return mask


def content_digest(arrays: tuple[np.ndarray, ...], names: tuple[str, ...], extra: tuple = ()) -> str:
    """sha256 (16 hex digits) of arrays' bytes and names. Read in row blocks: a memory-mapped token file or a
    broadcast mask is never materialised whole (the bytes hashed, and so the digest, are those of the whole array)."""
    h = hashlib.sha256()
    for a in arrays:
        rows = max(1, (1 << 24) // max(1, a[:1].nbytes))
        for i in range(0, max(len(a), 1), rows):
            h.update(np.ascontiguousarray(a[i:i + rows]).tobytes())
    h.update(json.dumps(names).encode())
    if extra:   # only when present: the digests of sets without them (and every cache keyed on them) are unchanged
        h.update(json.dumps(extra).encode())
    return h.hexdigest()[:16]
