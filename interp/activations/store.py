"""HDF5 storage of activations: one file per (checkpoint, prompt set, processing, hook[, gradient]).

One file per hook keeps every file complete-or-absent on its own: it is written under a temporary name, fsynced, and
renamed, so a killed run never leaves a file that looks complete, and a later analyzer asking for one more hook adds a
file instead of rewriting a shared one. Datasets carry their dimension names and provenance as attributes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from interp.errors import OutputError
from interp.trust import atomic
from interp.trust.paths import safe_hook

DATASET = "data"
BFLOAT16 = "bfloat16"   # numpy has no bfloat16: such files hold the uint16 bit patterns, read back as float32


def numpy_dtype(storage: str) -> str:
    """The dtype an HDF5 file of ``storage`` holds (bfloat16 as its uint16 bit patterns)."""
    return "uint16" if storage == BFLOAT16 else storage


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (bfloat16 is the top half of a float32, so this is exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def cache_key(checkpoint_id: str, sha256: str | None, prompts_digest: str, processing_key: str) -> str:
    h = hashlib.sha256(f"{checkpoint_id}|{sha256}|{prompts_digest}|{processing_key}".encode()).hexdigest()[:16]
    return f"{checkpoint_id}/{h}"


def hook_file(root: Path, key: str, hook: str, grad: bool = False) -> Path:
    safe_hook(hook)
    return Path(root) / key / (f"{hook}.grad.h5" if grad else f"{hook}.h5")


class HookWriter:
    """Appends [prompt, ...] blocks of one hook's activations to a temporary HDF5 file; ``commit`` makes it final.

    The free space for the whole array (``expected_rows``) is checked before the first byte is written: HDF5 does
    not fail cleanly when the disk fills under it. Any OS error becomes ``OutputError`` and removes the temporary."""

    def __init__(self, path: Path, row_shape: tuple[int, ...], dims: tuple[str, ...], attrs: dict,
                 dtype: str = "float32", chunk_rows: int = 1024, expected_rows: int | None = None):
        self.path = Path(path)
        self.tmp = atomic.temp_name(self.path)
        attrs = {**attrs, "bfloat16": dtype == BFLOAT16}
        dtype = numpy_dtype(dtype)
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic.ensure_space(self.path, row_bytes * (expected_rows or 0))
            self._f = h5py.File(self.tmp, "w")
            rows = _chunk_rows(row_shape, dtype, chunk_rows, expected_rows)
            self._ds = self._f.create_dataset(DATASET, shape=(0, *row_shape), maxshape=(None, *row_shape),
                                              dtype=np.dtype(dtype), chunks=(rows, *row_shape))
            self._ds.attrs["dims"] = list(dims)
            for k, v in attrs.items():
                self._ds.attrs[k] = v
        except OSError as e:
            self.abort()
            raise OutputError(atomic.describe_os_error(e, self.path)) from None
        self.n = 0
        self.nonfinite = 0

    def append(self, block: np.ndarray, nonfinite: int | None = None) -> None:
        """``nonfinite``: the block's count of non-finite values when the caller already has it."""
        m = block.shape[0]
        self.nonfinite += int(block.size - np.isfinite(block).sum()) if nonfinite is None else nonfinite
        try:
            self._ds.resize(self.n + m, axis=0)
            self._ds[self.n: self.n + m] = block
        except OSError as e:
            self.abort()
            raise OutputError(atomic.describe_os_error(e, self.path)) from None
        self.n += m

    def commit(self) -> Path:
        try:
            self._ds.attrs["nonfinite"] = self.nonfinite
            self._ds.attrs["complete"] = True
            self._f.flush()
            self._f.close()
            atomic.fsync_file(self.tmp)
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise OutputError(atomic.describe_os_error(e, self.path)) from None
        return self.path

    def abort(self) -> None:
        f = getattr(self, "_f", None)
        try:
            if f is not None and f.id.valid:
                f.close()
        except Exception:   # closing a file whose disk is full may fail again; the temporary goes regardless
            pass
        finally:
            self.tmp.unlink(missing_ok=True)


def _chunk_rows(row_shape: tuple[int, ...], dtype: str, most: int, expected: int | None = None) -> int:
    """Rows per HDF5 chunk: at most ``most``, at most the rows expected (HDF5 allocates whole chunks, so 1,024 rows
    of a wide hook would reserve gigabytes for a ten-prompt set), and at most ~4 MiB (smaller chunks slowed the
    writes: benchmarks/cache.py went from 1.25 to 1.74 x a forward pass with 256 KiB chunks)."""
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return max(1, min(most, expected or most, (4 << 20) // max(row_bytes, 1)))


def is_complete(path: Path) -> bool:
    if not Path(path).is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return bool(f[DATASET].attrs.get("complete", False))
    except (OSError, KeyError):
        return False


class HookArray:
    """Read access to one stored hook: shape, attributes, and chunked iteration (memory bounded by the chunk)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            ds = f[DATASET]
            self.shape = tuple(ds.shape)
            self.dims = tuple(ds.attrs["dims"])
            self.attrs = {k: ds.attrs[k] for k in ds.attrs}
            self.chunk_rows = ds.chunks[0] if ds.chunks else 1
        self._decode = from_bfloat16 if bool(self.attrs.get("bfloat16", False)) else (lambda a: a)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def positions(self) -> int:
        """Vectors per stored row: the positions of a [prompt, pos, d] hook, 1 for a [prompt, d] one."""
        return int(np.prod(self.shape[1:-1], dtype=np.int64)) if len(self.shape) > 2 else 1

    def rows_for(self, tokens: int) -> int:
        """Prompts per block for a budget of about ``tokens`` vectors (at least one prompt), rounded down to whole
        HDF5 chunks where it can be, so no stored chunk is read twice.

        The budget is in tokens, not prompts, so memory stays bounded whatever the context length: 4,096 prompts
        were 210 MB of float64 work arrays at n_ctx 64 and would be 100 GB at Pythia's 2,048 x 3,072."""
        rows = max(1, tokens // self.positions)
        return rows - rows % self.chunk_rows if rows >= self.chunk_rows else rows

    def chunks(self, tokens: int = 16384) -> Iterator[np.ndarray]:
        """Consecutive [prompt, ...] blocks of about ``tokens`` vectors each."""
        return self.blocks(self.rows_for(tokens))

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        """Consecutive [prompt, ...] blocks of ``rows`` prompts: arrays read side by side use one ``rows``."""
        with h5py.File(self.path, "r") as f:
            ds = f[DATASET]
            for start in range(0, ds.shape[0], rows):
                yield self._decode(ds[start: start + rows])

    def read(self) -> np.ndarray:
        """The whole array: for small data (tests, tiny models) only."""
        with h5py.File(self.path, "r") as f:
            return self._decode(f[DATASET][()])
