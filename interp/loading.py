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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

    from interp.manifest import CheckpointRef

DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class Processing:
    """Weight processing applied after loading; all off by default, and part of every cache key and provenance."""

    fold_ln: bool = False
    center_writing_weights: bool = False
    center_unembed: bool = False
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"processing.dtype {self.dtype!r} is not one of {DTYPES}")

    @property
    def any_weight_processing(self) -> bool:
        return self.fold_ln or self.center_writing_weights or self.center_unembed

    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())


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

    tensors = {k: v.detach().to(torch_dtype(dtype)).contiguous().cpu() for k, v in model.named_parameters()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata or {})
    tmp.replace(path)


def _header_shapes(path: Path, allow_pickle: bool) -> dict[str, tuple[int, ...]]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # safetensors raises several types for a corrupt header
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        if not allow_pickle:
            raise CheckpointError(f"{path}: pickle checkpoints can run code on load and are refused; convert it to "
                                  f".safetensors, or pass allow_pickle=True to load it with weights_only=True")
        return {k: tuple(v.shape) for k, v in _read_pickle(path).items()}
    raise CheckpointError(f"{path}: unknown checkpoint format {path.suffix!r}; expected .safetensors (or .pt with "
                          f"allow_pickle=True)")


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
    found = _header_shapes(path, allow_pickle)
    found = {k: v for k, v in found.items() if not k.endswith(("attn.mask", "attn.IGNORE"))}
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
        model = model.to(torch_dtype(processing.dtype))
    model.eval()
    return model


def load_ref(ref: CheckpointRef, device: str = "auto", allow_pickle: bool = False) -> HookedTransformer:
    if ref.format == "hf":
        return load_hf_folder(ref.path, device=device, processing=ref.processing)
    return load_model(ref.path, ref.model, device=device, processing=ref.processing, allow_pickle=allow_pickle)


@contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels for a block (restored after): multi-threaded CPU backward passes (the embedding's
    scatter-add) otherwise differ run to run in the last bits, and analyzers must be reproducible bit for bit.
    The flag is process-wide: Dask workers should run one thread each (``DaskExecutor``'s default)."""
    import torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


class ModelSlot:
    """The one model a process holds. Consecutive checkpoints of the same architecture are loaded into the same
    module in place, so walking a series of hundreds of steps allocates once and memory stays flat; a different
    architecture (or declared weight processing, which rewrites the config) replaces the model."""

    def __init__(self) -> None:
        self._model: HookedTransformer | None = None
        self._key: tuple | None = None
        self._id: str | None = None
        self.loads = 0

    def get(self, ref: CheckpointRef, device: str, allow_pickle: bool = False) -> HookedTransformer:
        ident = f"{ref.id}@{device}|{ref.path}|{ref.sha256}"   # names alone can repeat across series
        if self._model is not None and self._id == ident:
            return self._model
        reusable = ref.format != "hf" and not ref.processing.any_weight_processing and ref.processing.dtype == "float32"
        key = (json.dumps(ref.model, sort_keys=True), device) if reusable else None
        if key is not None and key == self._key:
            self._id = None   # if the load below fails, the half-written model must not be served as the old one
            load_model(ref.path, ref.model, device=device, allow_pickle=allow_pickle, into=self._model)
        else:
            self.clear()
            self._model = load_ref(ref, device=device, allow_pickle=allow_pickle)
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

    def get(self, ref: CheckpointRef, device: str, allow_pickle: bool = False) -> HookedTransformer:
        return self._slot().get(ref, device, allow_pickle)

    def clear(self) -> None:
        self._slot().clear()

    @property
    def loads(self) -> int:
        return self._slot().loads


SLOT = _PerThreadSlot()


@contextmanager
def loaded(ref: CheckpointRef, device: str = "auto", allow_pickle: bool = False) -> Iterator[HookedTransformer]:
    """Hold one model for the duration of a block, then release it (and the CUDA cache) so memory stays flat."""
    model = load_ref(ref, device=device, allow_pickle=allow_pickle)
    try:
        yield model
    finally:
        del model
        release_memory()


def release_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


HF_ARCHITECTURES = ("GPT2LMHeadModel", "GPTNeoXForCausalLM")


def hf_model_kwargs(folder: Path) -> dict[str, Any]:
    """``HookedTransformerConfig`` keyword arguments for a local Hugging Face folder, read from its config.json.

    Written here rather than taken from TransformerLens 3.9's ``convert_hf_model_config``, which reads GPT-2's
    ``n_ctx`` (gone from transformers 5 configs) and may fetch from the hub; this reads only the local file."""
    cfg_file = Path(folder) / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{folder}: no config.json; a Hugging Face checkpoint folder needs one")
    hf = json.loads(cfg_file.read_text())
    arch = (hf.get("architectures") or [None])[0]
    if arch not in HF_ARCHITECTURES:
        raise CheckpointError(f"{cfg_file}: architecture {arch!r} is not supported; supported: {HF_ARCHITECTURES}")
    try:
        if arch == "GPT2LMHeadModel":
            d_model, n_heads = hf["n_embd"], hf["n_head"]
            return dict(d_model=d_model, d_head=d_model // n_heads, n_heads=n_heads,
                        d_mlp=hf.get("n_inner") or 4 * d_model, n_layers=hf["n_layer"],
                        n_ctx=hf.get("n_positions", hf.get("n_ctx")), eps=hf.get("layer_norm_epsilon", 1e-5),
                        d_vocab=hf["vocab_size"], act_fn=hf.get("activation_function", "gelu_new"),
                        use_attn_scale=hf.get("scale_attn_weights", True),
                        scale_attn_by_inverse_layer_idx=hf.get("scale_attn_by_inverse_layer_idx", False),
                        normalization_type="LN", original_architecture=arch)
        d_model, n_heads = hf["hidden_size"], hf["num_attention_heads"]
        d_head = d_model // n_heads
        rotary_pct = hf.get("rotary_pct", hf.get("partial_rotary_factor",
                                                  (hf.get("rope_parameters") or {}).get("partial_rotary_factor", 1.0)))
        return dict(d_model=d_model, d_head=d_head, n_heads=n_heads, d_mlp=hf["intermediate_size"],
                    n_layers=hf["num_hidden_layers"], n_ctx=hf["max_position_embeddings"],
                    eps=hf.get("layer_norm_eps", 1e-5), d_vocab=hf["vocab_size"], act_fn=hf.get("hidden_act", "gelu"),
                    parallel_attn_mlp=hf.get("use_parallel_residual", True), positional_embedding_type="rotary",
                    rotary_dim=round(rotary_pct * d_head), rotary_adjacent_pairs=False,
                    rotary_base=hf.get("rotary_emb_base", (hf.get("rope_parameters") or {}).get("rope_theta", 10000)),
                    normalization_type="LN", default_prepend_bos=False, original_architecture=arch)
    except KeyError as e:
        raise CheckpointError(f"{cfg_file}: field {e.args[0]!r} is missing for architecture {arch}") from None


def load_hf_folder(folder: Path, device: str = "auto", processing: Processing = Processing()) -> HookedTransformer:
    """A local Hugging Face-format folder (GPT-2 or GPT-NeoX/Pythia) -> ``HookedTransformer``, offline."""
    import torch

    folder = Path(folder)
    kwargs = hf_model_kwargs(folder)
    device = resolve_device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights, convert_neox_weights
        from transformers import AutoModelForCausalLM

        hf_model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
        model = build_model(kwargs, device=device)
        convert = convert_gpt2_weights if kwargs["original_architecture"] == "GPT2LMHeadModel" else convert_neox_weights
        state = convert(hf_model, model.cfg)
    del hf_model
    model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                      fold_value_biases=False, refactor_factored_attn_matrices=False)
    return _finish(model, processing)
