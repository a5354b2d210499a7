"""On-disk checkpoint layouts: what a path holds, read without importing torch where possible.

- ``safetensors``: interp's own checkpoints (``step<T>.safetensors`` + a ``config.json`` of model kwargs);
- ``hf``: Hugging Face model folders of every family TransformerLens converts (``hf.py``, ``hf_convert.py``),
  including hub-cache snapshots (``hub_cache.py``) and Trainer ``checkpoint-<N>/`` folders;
- ``nanogpt``: nanoGPT's ``ckpt.pt`` (``nanogpt.py``).

``discovery.py`` scans a folder of any of these into a manifest (``interp manifest init``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interp.errors import CheckpointError

FORMATS = ("safetensors", "hf", "nanogpt")


def detect(path: Path) -> str:
    """The layout of one checkpoint path (``CheckpointError`` naming the path when it is none of them)."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        raise CheckpointError(f"{path}: a folder without config.json is not a checkpoint (expected a Hugging Face "
                              f"model folder)")
    if path.suffix == ".safetensors":
        return "safetensors"
    if path.suffix in (".pt", ".pth", ".ckpt"):
        return "nanogpt"
    raise CheckpointError(f"{path}: not a checkpoint layout interp reads ({', '.join(FORMATS)})")


def native_model_kwargs(path: Path) -> dict[str, Any]:
    """The ``model`` kwargs of an interp checkpoint: ``config.json`` beside it or in the one or two folders above
    (``<run>/seed<S>/step<T>.safetensors``)."""
    for folder in list(Path(path).resolve().parents)[:3]:
        cfg = folder / "config.json"
        if cfg.is_file():
            try:
                model = json.loads(cfg.read_text()).get("model")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                continue
            if isinstance(model, dict) and model:
                return model
    raise CheckpointError(f"{path}: no config.json with a 'model' field beside it or in the folders above; "
                          f"interp's own checkpoints need one")
