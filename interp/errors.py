"""One exception hierarchy. Every message names the file, field or hook at fault and what would be valid."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InterpError(Exception):
    """Base class of every error interp raises on purpose."""


class ManifestError(InterpError):
    """A manifest (or a checkpoint directory standing in for one) is malformed."""


class CheckpointError(InterpError):
    """A checkpoint file is missing, corrupt, unsafe, or does not match its config."""


class HookNameError(InterpError):
    """A TransformerLens hook name does not exist on the model."""


class ConfigError(InterpError):
    """An analyzer or training config has an unknown key or an invalid value."""


class NonFiniteError(InterpError):
    """Activations or gradients held NaN/inf and the policy is to raise."""


def suggest(name: str, valid: Iterable[str], n: int = 3) -> str:
    """' Did you mean ...?' for the closest valid names, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(valid), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
