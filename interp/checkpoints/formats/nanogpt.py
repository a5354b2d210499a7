"""nanoGPT checkpoints: ``ckpt.pt`` as nanoGPT's ``train.py`` saves it (``model``, ``model_args``, ``iter_num``,
``optimizer``, ``config``, ``best_val_loss``), and its char vocabulary ``meta.pkl``.

``ckpt.pt`` is a pickle, but one that holds only tensors and plain values: it is read with torch's
``weights_only`` unpickler, which admits exactly those and refuses anything that could run code, so it needs no
pickle opt-in (a file that needs more than that is refused). ``meta.pkl`` (``stoi``/``itos`` dicts) is parsed by an
unpickler that resolves no class or function at all. Keys prefixed ``_orig_mod.`` by ``torch.compile`` are
handled by TransformerLens's ``convert_nanogpt_weights``, which this module feeds.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

from interp.errors import CheckpointError, UnsafeInputError

CKPT_NAME = re.compile(r"^ckpt(?:[_-](\d+))?\.pt$")


def read(path: Path) -> dict[str, Any]:
    """The checkpoint dict, through torch's weights_only unpickler (tensors and plain values only)."""
    import torch

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:   # the unpickler raises several types for refused or damaged content
        raise CheckpointError(f"{path}: not a nanoGPT checkpoint readable with torch's weights_only loader "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict) or not isinstance(
            ckpt.get("model_args"), dict):
        raise CheckpointError(f"{path}: expected nanoGPT's checkpoint dict with 'model' and 'model_args'")
    return ckpt


def model_kwargs(model_args: dict[str, Any], where: Path) -> dict[str, Any]:
    """``HookedTransformerConfig`` keyword arguments for nanoGPT's ``model_args``: LayerNorm (bias or not: the
    converter reads it from the weights), learned positions, exact GELU (``nn.GELU()``; the tanh form is off by
    ~4e-4), a 4x MLP, attention scaled by 1/sqrt(d_head), tied embeddings."""
    try:
        n_embd, n_head = int(model_args["n_embd"]), int(model_args["n_head"])
        return dict(d_model=n_embd, n_layers=int(model_args["n_layer"]), n_heads=n_head, d_head=n_embd // n_head,
                    d_mlp=4 * n_embd, n_ctx=int(model_args["block_size"]), d_vocab=int(model_args["vocab_size"]),
                    act_fn="gelu", normalization_type="LN", eps=1e-5, positional_embedding_type="standard",
                    use_attn_scale=True, original_architecture="nanogpt", default_prepend_bos=False)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: model_args lacks or mangles {e}; expected nanoGPT's n_layer, n_head, "
                              f"n_embd, block_size, vocab_size") from None


def step_of(path: Path, ckpt: dict[str, Any] | None = None) -> int | None:
    """The training step: from the file name (``ckpt_500.pt``) or, for ``ckpt.pt``, its ``iter_num``."""
    m = CKPT_NAME.match(Path(path).name)
    if m and m.group(1):
        return int(m.group(1))
    if ckpt is not None and isinstance(ckpt.get("iter_num"), int):
        return ckpt["iter_num"]
    return None


def converted_state(ckpt: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """TransformerLens's own conversion of nanoGPT's state dict (on a copy: it renames keys in place)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformer_lens.pretrained.weight_conversions import convert_nanogpt_weights

    return convert_nanogpt_weights(dict(ckpt["model"]), cfg)


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise UnsafeInputError(f"meta.pkl names {module}.{name}; only plain dicts, lists, strings and numbers are "
                               f"accepted")


def read_meta(path: Path) -> dict[str, Any]:
    """nanoGPT's ``meta.pkl`` (``vocab_size``, ``stoi``, ``itos``), parsed without resolving any class or function:
    a file that names one is refused, so nothing in it can run."""
    try:
        meta = _NoGlobals(io.BytesIO(Path(path).read_bytes())).load()
    except UnsafeInputError as e:
        raise UnsafeInputError(f"{path}: {e}") from None
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable meta.pkl ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("stoi"), dict):
        raise CheckpointError(f"{path}: expected nanoGPT's meta dict with 'stoi' (char -> id)")
    return meta
