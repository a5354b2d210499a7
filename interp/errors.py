"""One exception hierarchy. Every message names the file, field, option or hook at fault and what would be valid.

    InterpError
    ├── ManifestError        a manifest (or a folder standing in for one) is malformed
    ├── CheckpointError      a checkpoint is missing, corrupt, or does not fit its config
    │   └── IntegrityError   its bytes are not the ones the manifest records (size, sha256)
    ├── UnsafeInputError     an input would make interp leave its folders, read a device, or run code
    ├── PromptError          prompts that do not fit the model (token ids, length)
    ├── HookNameError        a TransformerLens hook name that the model does not have
    ├── ConfigError          an option with an unknown key or an invalid value
    ├── NonFiniteError       NaN/inf in activations, gradients or weights, and the policy is to raise
    ├── OutputError          a result, cache or report file could not be written (full disk, read-only folder)
    └── ResultError          a saved result is missing, incomplete, tampered with, or of an unknown kind
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InterpError(Exception):
    """Base class of every error interp raises on purpose."""


class ManifestError(InterpError):
    """A manifest (or a checkpoint directory standing in for one) is malformed."""


class CheckpointError(InterpError):
    """A checkpoint file is missing, corrupt, unsafe, or does not match its config."""


class IntegrityError(CheckpointError):
    """A checkpoint's size or sha256 differs from the manifest's record."""


class UnsafeInputError(InterpError):
    """A path outside the folders interp was given, a device or FIFO, an unsafe name, or a file that would run code."""


class PromptError(InterpError):
    """Prompts that do not fit the model: token ids outside the vocabulary, sequences longer than its context."""


class HookNameError(InterpError):
    """A TransformerLens hook name does not exist on the model."""


class ConfigError(InterpError):
    """An analyzer or training config has an unknown key or an invalid value."""


class NonFiniteError(InterpError):
    """Activations, gradients or weights held NaN/inf and the policy is to raise."""


class OutputError(InterpError):
    """An output file could not be written (no space, read-only or forbidden folder)."""


class ResultError(InterpError):
    """A saved result is missing, incomplete, modified since it was written, or names an unknown result class."""


def suggest(name: str, valid: Iterable[str], n: int = 3) -> str:
    """' Did you mean ...?' for the closest valid names, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(valid), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
