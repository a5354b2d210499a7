"""The one adapter to TransformerLens: checkpoint specs and local Hugging Face folders -> ``HookedTransformer``.

When TransformerLens 4 replaces ``HookedTransformer`` with ``TransformerBridge``, this module is the one to change.

Promises kept here:
- safetensors first; pickle (``.pt``/``.bin``) refused unless ``allow_pickle=True``, then read with
  ``weights_only=True``;
- tensor names and shapes are checked against the config (on the meta device, from the file header) before any
  weight is allocated, and a mismatch names the file and tensor;
- weight processing (``fold_ln``, centering) is off unless declared in ``Processing``, which every result records.
"""

from __future__ import annotations

import gc
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.checkpoints.manifest import DTYPES, CheckpointRef, Processing
from interp.errors import CheckpointError, ConfigError, NonFiniteError, UnsafeInputError
from interp.trust.paths import PICKLE_SUFFIXES, folder_files

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    if device not in ("cpu",) and not device.startswith("cuda") and device != "meta":
        raise ConfigError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    return device


def torch_dtype(name: str) -> torch.dtype:
    import torch

    if name not in DTYPES:
        raise ConfigError(f"dtype {name!r} is not one of {DTYPES}")
    return getattr(torch, name)


def build_model(model_kwargs: dict[str, Any], device: str = "cpu", dtype: str = "float32") -> HookedTransformer:
    """A freshly initialised ``HookedTransformer`` from ``HookedTransformerConfig`` keyword arguments (stored as JSON
    because ``cfg.to_dict()`` is not JSON-serialisable). Initialisation is seeded by ``model_kwargs['seed']``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # HookedTransformer is deprecated in TL 4, see module doc
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        try:
            cfg = HookedTransformerConfig(**{**model_kwargs, "device": device, "dtype": torch_dtype(dtype)})
        except (TypeError, ValueError, AssertionError) as e:
            raise ConfigError(f"model config {model_kwargs} is not a valid HookedTransformerConfig: {e}") from e
        if device == "meta":
            import torch

            with torch.device("meta"):
                return HookedTransformer(cfg)
        return HookedTransformer(cfg)


def parameter_shapes(model_kwargs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Expected parameter names and shapes, computed on the meta device (no memory)."""
    return dict(_parameter_shapes(json.dumps(model_kwargs, sort_keys=True)))


@lru_cache(maxsize=32)
def _parameter_shapes(kwargs_json: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    model = build_model(json.loads(kwargs_json), device="meta")
    return tuple((k, tuple(v.shape)) for k, v in model.named_parameters())


def save_checkpoint(model: HookedTransformer, path: Path, dtype: str = "float32",
                    metadata: dict[str, str] | None = None) -> None:
    """Parameters only (the attention mask buffers are rebuilt from the config), as safetensors, atomically."""
    from safetensors.torch import save_file

    from interp.trust import atomic

    tensors = {k: v.detach().to(torch_dtype(dtype)).contiguous().cpu() for k, v in model.named_parameters()}
    atomic.write_with(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata or {}))


FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")   # safetensors' names; anything else is not a weight we can trust


def _header(path: Path, allow_pickle: bool) -> dict[str, tuple[tuple[int, ...], str]]:
    """{tensor: (shape, dtype)} from a safetensors header (nothing allocated), or from a pickle (opt-in only)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
        except Exception as e:  # safetensors raises several types for a corrupt header
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    if path.suffix in PICKLE_SUFFIXES:
        refuse_pickle(path, allow_pickle)
        return {k: (tuple(v.shape), "F32" if v.is_floating_point() else str(v.dtype))
                for k, v in _read_pickle(path).items()}
    raise CheckpointError(f"{path}: unknown checkpoint format {path.suffix!r}; expected .safetensors (or .pt with "
                          f"allow_pickle=True)")


def refuse_pickle(path: Path, allow_pickle: bool) -> None:
    if not allow_pickle:
        raise UnsafeInputError(f"{path}: a pickle file can run code when it is loaded and is refused; convert it "
                               f"to .safetensors, or pass allow_pickle=True (--allow-pickle) to read it with "
                               f"torch's weights_only loader")


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: could not be read with weights_only=True ({e})") from e
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(sd).__name__}")
    return sd


def check_shapes(path: Path, model_kwargs: dict[str, Any], allow_pickle: bool = False) -> None:
    """Raise ``CheckpointError`` naming the file and tensor if the file does not fit the config."""
    expected = parameter_shapes(model_kwargs)
    header = _header(path, allow_pickle)
    found = {k: shape for k, (shape, _) in header.items() if not k.endswith(("attn.mask", "attn.IGNORE"))}
    for name, (_, dtype) in header.items():
        if name in expected and dtype.upper() not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} holds {dtype.lower().replace('i', 'int')} values; weights "
                                  f"must be floating point ({', '.join(FLOAT_DTYPES)}), casting would change them")
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not match the config: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, shape in expected.items():
        if found[name] != shape:
            hint = " (d_vocab differs: vocabulary mismatch)" if name in ("embed.W_E", "unembed.W_U") else ""
            raise CheckpointError(f"{path}: tensor {name!r} has shape {found[name]}, the config expects {shape}{hint}")


def load_model(path: Path, model_kwargs: dict[str, Any], device: str = "auto",
               processing: Processing = Processing(), allow_pickle: bool = False,
               into: HookedTransformer | None = None) -> HookedTransformer:
    """Load one checkpoint into a ``HookedTransformer`` in eval mode.

    ``into``: an unprocessed float32 model of the same config to overwrite in place (no new allocation), which is
    how a series is walked with one model's worth of memory."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    check_shapes(path, model_kwargs, allow_pickle)
    device = resolve_device(device)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = _read_pickle(path)
    model = into if into is not None else build_model(model_kwargs, device=device, dtype="float32")
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(state[name].to(torch.float32))
    del state
    return _finish(model, processing)


def _finish(model: HookedTransformer, processing: Processing) -> HookedTransformer:
    if processing.any_weight_processing:
        model.process_weights_(fold_ln=processing.fold_ln, center_writing_weights=processing.center_writing_weights,
                               center_unembed=processing.center_unembed)
    if processing.dtype != "float32":
        model = model.to(torch_dtype(processing.dtype), print_details=False)
    model.eval()
    return model


def check_finite_weights(model: HookedTransformer, where: str) -> None:
    """Raise ``NonFiniteError`` naming the parameters that hold NaN or inf (the policy ``nonfinite='raise'``)."""
    import torch

    # a sum is finite iff every entry is, barring overflow (then counted exactly): one pass, no temporary tensor
    suspect = [(n, p) for n, p in model.named_parameters() if not bool(torch.isfinite(p.detach().sum()))]
    bad = [(n, k) for n, p in suspect if (k := int((~torch.isfinite(p.detach())).sum()))]
    if bad:
        listed = ", ".join(f"{n} ({k} values)" for n, k in bad[:5])
        raise NonFiniteError(f"{where}: non-finite weights in {listed}; every number computed from them would be "
                             f"NaN or inf. Pass nonfinite='keep' (--nonfinite keep) to analyse it anyway")


def ensure_verified(ref: CheckpointRef) -> CheckpointRef:
    """The loader's own check of the trust boundary: a ref verified earlier must still be the same file(s) (a stat,
    no rehash); an unverified one is hashed and compared with its manifest entry now."""
    from interp.trust.hashes import Verifier

    if not ref.stamps:
        return ref.verified()
    for stamp in ref.stamps:
        Verifier.default().still(stamp, f"checkpoint file of {ref.id}")
    return ref


def load_ref(ref: CheckpointRef, device: str = "auto", allow_pickle: bool = False,
             nonfinite: str = "raise") -> HookedTransformer:
    ref = ensure_verified(ref)
    model = _load(ref.path, ref.format, ref.model, device, ref.processing, allow_pickle)
    if nonfinite == "raise":
        check_finite_weights(model, f"{ref.path} (checkpoint {ref.id})")
    return model


def _load(path: Path, fmt: str, model_kwargs: dict[str, Any], device: str, processing: Processing,
          allow_pickle: bool) -> HookedTransformer:
    if fmt == "hf":
        return load_hf_folder(path, device=device, processing=processing, allow_pickle=allow_pickle)
    if fmt == "nanogpt":
        return load_nanogpt(path, device=device, processing=processing)
    return load_model(path, model_kwargs, device=device, processing=processing, allow_pickle=allow_pickle)


def load_checkpoint(path: str | Path, device: str = "auto", dtype: str = "float32", format: str | None = None,
                    allow_pickle: bool = False, nonfinite: str = "raise") -> HookedTransformer:
    """One checkpoint of any supported layout -> ``HookedTransformer`` (eval mode, no weight processing): a Hugging
    Face folder (any family in ``interp.checkpoints.formats.hf.SUPPORTED``, e.g. a hub-cache snapshot or a Trainer
    ``checkpoint-N/``), a nanoGPT ``ckpt.pt``, or interp's own ``.safetensors`` (its ``config.json`` found beside
    it or up to two folders above). ``format`` forces one of ``hf``, ``nanogpt``, ``safetensors``."""
    from interp.checkpoints.formats import detect, native_model_kwargs

    path = Path(path)
    fmt = format or detect(path)
    kwargs = native_model_kwargs(path) if fmt == "safetensors" else {}
    model = _load(path, fmt, kwargs, device, Processing(dtype=dtype), allow_pickle)
    if nonfinite == "raise":
        check_finite_weights(model, str(path))
    return model


def load_nanogpt(path: Path, device: str = "auto", processing: Processing = Processing()) -> HookedTransformer:
    """A nanoGPT ``ckpt.pt`` (``interp.checkpoints.formats.nanogpt``) -> ``HookedTransformer``."""
    import torch

    from interp.checkpoints.formats import nanogpt

    ckpt = nanogpt.read(path)
    model = build_model(nanogpt.model_kwargs(ckpt["model_args"], path), device="cpu")
    state = nanogpt.converted_state(ckpt, model.cfg)
    del ckpt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = model.fill_missing_keys(state)   # nanoGPT's lm_head has no bias: b_U is zero
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(("attn.mask", "attn.IGNORE"))]
    if missing:
        raise CheckpointError(f"{path}: the converted weights lack {missing[:5]}")
    with torch.no_grad():
        for name, tensor in state.items():
            if name in own and not name.endswith(("attn.mask", "attn.IGNORE")):
                own[name].copy_(tensor.to(own[name].dtype))
    del state
    return _finish(model.to(resolve_device(device), print_details=False), processing)


class ModelSlot:
    """The one model a process holds. Consecutive checkpoints of the same architecture are loaded into the same
    module in place, so walking a series of hundreds of steps allocates once and memory stays flat; a different
    architecture (or declared weight processing, which rewrites the config) replaces the model."""

    def __init__(self) -> None:
        self._model: HookedTransformer | None = None
        self._key: tuple | None = None
        self._id: str | None = None
        self.loads = 0

    def get(self, ref: CheckpointRef, device: str, allow_pickle: bool = False,
            nonfinite: str = "raise") -> HookedTransformer:
        ident = f"{ref.id}@{device}|{ref.path}|{ref.sha256}"   # names alone can repeat across series
        if self._model is not None and self._id == ident:
            return self._model
        reusable = (ref.format == "safetensors" and not ref.processing.any_weight_processing
                    and ref.processing.dtype == "float32")
        key = (json.dumps(ref.model, sort_keys=True), device) if reusable else None
        if key is not None and key == self._key:
            self._id = None   # if the load below fails, the half-written model must not be served as the old one
            ref = ensure_verified(ref)
            load_model(ref.path, ref.model, device=device, allow_pickle=allow_pickle, into=self._model)
            if nonfinite == "raise":
                check_finite_weights(self._model, f"{ref.path} (checkpoint {ref.id})")
        else:
            self.clear()
            self._model = load_ref(ref, device=device, allow_pickle=allow_pickle, nonfinite=nonfinite)
            self._key = key
        self._id = ident
        self.loads += 1
        return self._model

    def clear(self) -> None:
        if self._model is not None:
            self._model, self._key, self._id = None, None, None
            release_memory()


class _PerThreadSlot:
    """``SLOT``: each thread's own ``ModelSlot`` (a Dask worker may run jobs on several threads; one shared module
    loaded in place by two jobs at once would mix their weights)."""

    def __init__(self) -> None:
        import threading

        self._local = threading.local()

    def _slot(self) -> ModelSlot:
        if not hasattr(self._local, "slot"):
            self._local.slot = ModelSlot()
        return self._local.slot

    def get(self, ref: CheckpointRef, device: str, allow_pickle: bool = False,
            nonfinite: str = "raise") -> HookedTransformer:
        return self._slot().get(ref, device, allow_pickle, nonfinite)

    def clear(self) -> None:
        self._slot().clear()

    @property
    def loads(self) -> int:
        return self._slot().loads


SLOT = _PerThreadSlot()


def release_memory() -> None:
    """Free the released model's memory for real: collect, empty the CUDA cache, and hand freed heap pages back to
    the OS (glibc keeps large freed blocks otherwise, and a series' peak memory would creep up model by model)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc: nothing to trim
        pass
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_hf_folder(folder: Path, device: str = "auto", processing: Processing = Processing(),
                   allow_pickle: bool = False) -> HookedTransformer:
    """A local Hugging Face-format folder of any supported decoder family -> ``HookedTransformer``, offline.

    The config and weights go through TransformerLens's own converters (``interp.checkpoints.formats.hf_convert``). The
    converted tensors become the model's parameters (``assign``: no second full copy), then each is cloned into
    memory of its own, one at a time: converters alias tensors (GPT-2's W_U is W_E.T) and transformers may back them
    with the memory-mapped file, and analyzers perturb parameters in place (SGLD, interference steps). Peak memory
    stays under ~2x the checkpoint (benchmarks/load.py). Pickle weights (``pytorch_model.bin``) need
    ``allow_pickle``."""
    import torch

    from interp.checkpoints.formats.hf import hf_model_kwargs
    from interp.checkpoints.formats.hf_convert import restore_attention_biases, tl_config

    folder = Path(folder)
    device = resolve_device(device)
    hf_model_kwargs(folder)   # refuses an unsupported architecture by name, before transformers reads anything
    files = folder_files(folder)
    if not any(f.suffix == ".safetensors" for f in files):
        for f in files:
            if f.suffix in PICKLE_SUFFIXES:
                refuse_pickle(f, allow_pickle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import transformer_lens.loading_from_pretrained as tl_loading
        from transformer_lens import HookedTransformer
        from transformers import AutoConfig, AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()   # one bar per checkpoint of a series of hundreds says nothing

        try:
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            cfg = tl_config(config, folder, torch.float32)
            hf_model = AutoModelForCausalLM.from_pretrained(
                str(folder), config=config, local_files_only=True, dtype=torch.float32,
                use_safetensors=not allow_pickle or None, trust_remote_code=False)
        except (ValueError, OSError, KeyError, RuntimeError) as e:   # transformers' own errors for a bad folder
            raise CheckpointError(f"{folder}: transformers cannot read this model folder "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:300]})") from None
        with torch.no_grad():
            state = tl_loading.get_pretrained_state_dict(str(folder), cfg, hf_model, dtype=torch.float32)
            restore_attention_biases(state, hf_model, cfg, config)
        del hf_model
        model = HookedTransformer(cfg, move_to_device=False)   # init_weights=False: torch.empty, never touched
    _assign(model, state, folder)
    return _finish(model.to(device, print_details=False), processing)


def _assign(model: HookedTransformer, state: dict, where: Path) -> None:
    """Load converted tensors as the parameters, refusing keys TransformerLens would drop silently."""
    import torch

    from interp.checkpoints.formats.hf_convert import _HARMLESS_EXTRA

    own = model.state_dict()
    unexpected = [k for k in state if k not in own and not k.endswith(_HARMLESS_EXTRA)]
    if unexpected:
        raise CheckpointError(f"{where}: the converted weights have tensors the model has no place for "
                              f"({unexpected[:5]}); refusing to load a partial model")
    state = {k: v for k, v in state.items() if k in own}
    # TransformerLens' fill_missing_keys fills a missing weight matrix with the model's own, uninitialised (torch.empty)
    # values: garbage that is sometimes inf/NaN. The one a converter legitimately omits is the positional embedding of
    # a model that has none (ALiBi: BLOOM), which the forward pass never reads: zeros. Any other missing matrix is a
    # partial checkpoint.
    for k in own:
        if k not in state and "W_" in k:
            if k == "pos_embed.W_pos" and model.cfg.positional_embedding_type != "standard":
                state[k] = torch.zeros_like(own[k], device="cpu")
            else:
                raise CheckpointError(f"{where}: the converted weights lack {k}; refusing to load a partial model")
    state = model.fill_missing_keys(state)
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False, assign=True)
        del state
        seen: set[int] = set()
        for module in model.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                ptr = param.untyped_storage().data_ptr()
                if ptr in seen or not param.is_contiguous():   # a view of another parameter (W_U = W_E.T, ...)
                    fresh = param.detach().clone(memory_format=torch.contiguous_format)
                    setattr(module, name, torch.nn.Parameter(fresh, requires_grad=param.requires_grad))
                seen.add(ptr)
