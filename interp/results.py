"""Results on disk: per (unit, analyzer) an HDF5 file of arrays and a JSON summary.

Write order is the completion protocol: the HDF5 goes to a temporary name, is fsynced and renamed; then the JSON
(holding the HDF5's sha256) is written the same way. A unit is complete iff its JSON exists and names an HDF5 whose
hash matches, so a killed run is redone from the first incomplete unit and never reads a partial file as complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from interp.analyzers.base import Result
from interp.errors import InterpError

SCHEMA_VERSION = 1
_PACKAGES = ("interp", "torch", "transformer-lens", "sae-lens", "numpy", "h5py")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "absent"
    return out


def unit_paths(out_dir: Path, analyzer: str, unit_id: str) -> tuple[Path, Path]:
    base = Path(out_dir) / analyzer / unit_id
    return base.with_suffix(".h5"), base.with_suffix(".json")


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(final)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_result(result: Result, out_dir: Path) -> Path:
    h5_path, json_path = unit_paths(out_dir, result.analyzer, result.unit_id)
    h5_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = h5_path.with_name(h5_path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
    with h5py.File(tmp, "w") as f:
        for name, arr in sorted(result.arrays.items()):
            ds = f.create_dataset(name, data=arr)
            ds.attrs["dims"] = list(result.dims[name])
    _fsync_replace(tmp, h5_path)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "analyzer": result.analyzer,
        "result_class": f"{type(result).__module__}:{type(result).__qualname__}",
        "unit_id": result.unit_id,
        "config": result.config,
        "scalars": result.scalars,
        "provenance": {**result.provenance, "packages": package_versions()},
        "arrays": {k: {"dims": list(result.dims[k]), "shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in sorted(result.arrays.items())},
        "h5": h5_path.name,
        "h5_sha256": _sha256(h5_path),
    }
    jtmp = json_path.with_name(json_path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
    jtmp.write_text(json.dumps(summary, indent=1, default=_jsonable))
    _fsync_replace(jtmp, json_path)
    return json_path


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def is_complete(out_dir: Path, analyzer: str, unit_id: str, config: dict | None = None) -> bool:
    """The unit's JSON exists and names an HDF5 whose hash matches; with ``config``, it was also made with that
    config (a rerun with other settings recomputes the unit instead of reusing a stale result)."""
    h5_path, json_path = unit_paths(out_dir, analyzer, unit_id)
    if not json_path.is_file() or not h5_path.is_file():
        return False
    try:
        summary = json.loads(json_path.read_text())
        if config is not None and summary.get("config") != config:
            return False
        return summary.get("h5_sha256") == _sha256(h5_path)
    except (json.JSONDecodeError, OSError):
        return False


def load_result(path: Path) -> Result:
    """The typed result saved at ``path`` (its .json or .h5)."""
    path = Path(path)
    json_path = path.with_suffix(".json")
    if not json_path.is_file():
        raise InterpError(f"{json_path}: no result summary (the unit may be incomplete)")
    summary = json.loads(json_path.read_text())
    if summary.get("schema_version", 0) > SCHEMA_VERSION:
        raise InterpError(f"{json_path}: schema_version {summary['schema_version']} is newer than this interp reads")
    h5_path = json_path.with_name(summary["h5"])
    if _sha256(h5_path) != summary["h5_sha256"]:
        raise InterpError(f"{h5_path}: sha256 does not match its summary {json_path}; the unit is incomplete or "
                          f"was modified, rerun it")
    cls = _result_class(summary)
    result = cls(analyzer=summary["analyzer"], unit_id=summary["unit_id"], config=summary["config"],
                 scalars=summary["scalars"], provenance={k: v for k, v in summary["provenance"].items()
                                                         if k != "packages"})
    with h5py.File(h5_path, "r") as f:
        for name in f:
            result.arrays[name] = f[name][()]
            result.dims[name] = tuple(f[name].attrs["dims"])
    return result


def _result_class(summary: dict) -> type[Result]:
    import importlib

    module, _, qual = summary.get("result_class", "").partition(":")
    try:
        cls = getattr(importlib.import_module(module), qual)
        return cls if isinstance(cls, type) and issubclass(cls, Result) else Result
    except (ImportError, AttributeError, ValueError):
        return Result


def load_results(out_dir: Path, analyzer: str, config: dict | None = None) -> list[Result]:
    """Every complete unit of an analyzer (made with ``config``, when given)."""
    return [load_result(p) for p in sorted((Path(out_dir) / analyzer).rglob("*.json"))
            if is_complete(out_dir, analyzer, str(p.relative_to(Path(out_dir) / analyzer).with_suffix("")), config)]
