"""Results on disk: per (unit, analyzer) an HDF5 file of arrays and a JSON summary.

Write order is the completion protocol: the HDF5 goes to a temporary name, is fsynced and renamed
(``interp.trust.atomic``); then the JSON (holding the HDF5's sha256) is written the same way. A unit is complete iff its
JSON exists and names an HDF5 whose hash matches, so a killed run is redone from the first incomplete unit and never
reads a partial file as complete.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np

from interp.errors import ResultError
from interp.trust import atomic

# What interp promises about repeating a computation (docs/reproducibility.md): the same inputs on the same
# machine with the same number of threads give the same numbers, bit for bit; another thread count, another machine
# or a Dask worker sums floats in another order, and the numbers then agree within these tolerances.
RTOL, ATOL = 1e-4, 1e-5


@dataclass
class Result:
    """What one unit of work produced: arrays with named dimensions, JSON-able scalars, and where they came from.

    A result is storage's concept (this module saves and loads it); analyzers subclass it to add typed accessors.
    ``provenance["checkpoints"]`` lists the checkpoints of the unit (one, or every seed of a step)."""

    analyzer: str
    unit_id: str
    config: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scalars: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def _first(self) -> dict[str, Any]:
        return self.provenance["checkpoints"][0]

    @property
    def run(self) -> str:
        return self._first["run"]

    @property
    def seed(self) -> int:
        """The seed of a one-checkpoint unit (a unit over seeds: its first seed; ``seeds`` lists them all)."""
        return int(self._first["seed"])

    @property
    def seeds(self) -> list[int]:
        return [int(c["seed"]) for c in self.provenance["checkpoints"]]

    @property
    def step(self) -> int:
        return int(self._first["step"])

    def add(self, name: str, array: Any, dims: tuple[str, ...]) -> None:
        arr = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
        if arr.ndim != len(dims):
            raise ValueError(f"array {name!r} has {arr.ndim} dims, named {dims}")
        self.arrays[name], self.dims[name] = arr, tuple(dims)

    # Keys (glob patterns over array and scalar names) whose values a subclass declares special for ``differences``:
    # TIES hold a discrete choice among floats (a best match, a threshold flag), which may flip where the floats
    # compared lie within the tolerance of each other; SAMPLED come from an iterative stochastic fit (SGLD chains,
    # SAE training) that amplifies rounding, so another thread count gives another sample, not a nearby number.
    TIES: ClassVar[tuple[str, ...]] = ()
    SAMPLED: ClassVar[tuple[str, ...]] = ()
    MAX_TIE_FLIPS: ClassVar[float] = 0.01   # share of a TIES array's entries that may flip

    def differences(self, other: Result, rtol: float = RTOL, atol: float = ATOL) -> list[str]:
        """What differs between two results beyond what interp promises across thread counts, machines and Dask
        workers, where float sums are taken in another order (empty: they agree). Floats, in arrays and scalars,
        may differ by ``atol + rtol * |value|``; ``TIES`` arrays may flip in at most ``MAX_TIE_FLIPS`` of their
        entries; ``SAMPLED`` keys are left out; everything else (integers, flags, strings, shapes, dims, config)
        must be equal. On one machine with one thread count results are bit-identical (``equals``)."""
        def matches(key: str, patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(key, p) for p in patterns)

        out = []
        if (self.analyzer, self.unit_id, self.config, self.dims) != (other.analyzer, other.unit_id, other.config,
                                                                       other.dims):
            out.append("analyzer, unit, config or dims differ")
        mine = {k: v for k, v in self.scalars.items() if not matches(k, self.SAMPLED)}
        theirs = {k: v for k, v in other.scalars.items() if not matches(k, self.SAMPLED)}
        out += _scalar_differences(mine, theirs, "scalars", rtol, atol)
        for k in sorted(set(self.arrays) | set(other.arrays)):
            a, b = self.arrays.get(k), other.arrays.get(k)
            if matches(k, self.SAMPLED):
                continue
            if a is None or b is None or a.shape != b.shape or a.dtype.kind != b.dtype.kind:
                out.append(f"array {k}: present, shape or kind differ")
            elif a.dtype.kind in "fc":
                if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                    worst = float(np.nanmax(np.abs(a.astype(np.float64) - b)))
                    out.append(f"array {k}: differs by up to {worst:.3g} (rtol {rtol}, atol {atol})")
            elif (flips := int((a != b).sum())) > (self.MAX_TIE_FLIPS * a.size if matches(k, self.TIES) else 0):
                out.append(f"array {k}: {flips} of {a.size} entries differ")
        return out

    def equals(self, other: Result) -> bool:
        """Bit-for-bit equality of arrays (NaN equal to NaN) and equality of everything else."""
        if (self.analyzer, self.unit_id, self.config, self.dims) != (other.analyzer, other.unit_id, other.config,
                                                                       other.dims):
            return False
        if json.dumps(self.scalars, sort_keys=True) != json.dumps(other.scalars, sort_keys=True):
            return False
        return set(self.arrays) == set(other.arrays) and all(
            a.dtype == other.arrays[k].dtype and a.shape == other.arrays[k].shape
            and np.array_equal(a, other.arrays[k], equal_nan=a.dtype.kind == "f")
            for k, a in self.arrays.items())


def _scalar_differences(a: Any, b: Any, where: str, rtol: float, atol: float) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys differ"]
        return [d for k in a for d in _scalar_differences(a[k], b[k], f"{where}.{k}", rtol, atol)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: lengths differ"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _scalar_differences(x, y, f"{where}[{i}]", rtol, atol)]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            if (a != a and b != b) or abs(a - b) <= atol + rtol * abs(b):
                return []
        return [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def unit_id(run: str, step: int, seed: int | None = None) -> str:
    """The one format of a unit's id, which is also its path under ``out_dir/<analyzer>/``: ``run/seedS/stepT`` for
    one checkpoint, ``run/stepT`` for a unit over every seed of a step."""
    return f"{run}/step{step}" if seed is None else f"{run}/seed{seed}/step{step}"


def run_unit_id(run: str) -> str:
    """The id of a unit over a run's whole series (every seed and step): ``run/series``."""
    return f"{run}/series"


def by_run_step(results: list[Result]) -> dict[str, dict[int, list[Result]]]:
    """Results grouped by run, then step (each list holds one result per seed or seed group, by seed)."""
    out: dict[str, dict[int, list[Result]]] = {}
    for r in results:
        out.setdefault(r.run, {}).setdefault(r.step, []).append(r)
    return {run: {step: sorted(rs, key=lambda r: r.seed) for step, rs in sorted(steps.items())}
            for run, steps in sorted(out.items())}


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
    """Where a unit's files live: ``out_dir/analyzer/run/seedS/stepT.{h5,json}``. Run names are checked safe when
    the manifest is read; this refuses anything that would still leave ``out_dir``."""
    from interp.trust.paths import confine

    base = Path(out_dir) / analyzer / unit_id
    confine(base, Path(out_dir), f"result of unit {unit_id!r}")
    return base.with_suffix(".h5"), base.with_suffix(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_result(result: Result, out_dir: Path) -> Path:
    """Write the unit's HDF5, then its JSON summary (the completion marker); both atomically."""
    h5_path, json_path = unit_paths(out_dir, result.analyzer, result.unit_id)
    atomic.ensure_space(h5_path, sum(a.nbytes for a in result.arrays.values()))

    def write_h5(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for name, arr in sorted(result.arrays.items()):
                ds = f.create_dataset(name, data=arr)
                ds.attrs["dims"] = list(result.dims[name])

    atomic.write_with(h5_path, write_h5)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "analyzer": result.analyzer,
        "result_class": type(result).__qualname__,
        "unit_id": result.unit_id,
        "config": result.config,
        "scalars": result.scalars,
        "provenance": {**result.provenance, "packages": package_versions()},
        "arrays": {k: {"dims": list(result.dims[k]), "shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in sorted(result.arrays.items())},
        "h5": h5_path.name,
        "h5_sha256": _sha256(h5_path),
    }
    atomic.write_text(json_path, json.dumps(summary, indent=1, default=_jsonable))
    return json_path


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def is_complete(out_dir: Path, analyzer: str, unit_id: str, config: dict | None = None, key: str | None = None) -> bool:
    """The unit's JSON exists and names an HDF5 whose hash matches; with ``config``, it was also made with that
    config; with ``key`` (``interp.api.unit_key``: weights, config, prompts, cache settings), from the same inputs.
    A rerun with anything changed recomputes the unit instead of serving a stale result."""
    h5_path, json_path = unit_paths(out_dir, analyzer, unit_id)
    if not json_path.is_file() or not h5_path.is_file():
        return False
    try:
        summary = json.loads(json_path.read_text())
        if config is not None and summary.get("config") != config:
            return False
        if key is not None and (summary.get("provenance") or {}).get("unit_key") != key:
            return False
        return summary.get("h5_sha256") == _sha256(h5_path)
    except (json.JSONDecodeError, OSError, UnicodeDecodeError, AttributeError):
        return False


def load_result(path: Path, result_class: type[Result] = Result) -> Result:
    """The result saved at ``path`` (its .json or .h5), as ``result_class`` (``interp.load_result`` picks the
    analyzer's own class through the registry; a file never chooses what code is imported)."""
    path = Path(path)
    json_path = path.with_suffix(".json")
    if not json_path.is_file():
        raise ResultError(f"{json_path}: no result summary (the unit may be incomplete)")
    try:
        summary = json.loads(json_path.read_text())
        h5_path = json_path.with_name(Path(summary["h5"]).name)   # always beside its summary
        if summary.get("schema_version", 0) > SCHEMA_VERSION:
            raise ResultError(f"{json_path}: schema_version {summary['schema_version']} is newer than this interp "
                              f"reads ({SCHEMA_VERSION}); upgrade interp")
        if not h5_path.is_file() or _sha256(h5_path) != summary["h5_sha256"]:
            raise ResultError(f"{h5_path}: missing, or its sha256 does not match its summary {json_path}; the unit "
                              f"is incomplete or was modified, rerun it")
        result = result_class(analyzer=summary["analyzer"], unit_id=summary["unit_id"], config=summary["config"],
                              scalars=summary["scalars"], provenance={k: v for k, v in summary["provenance"].items()
                                                                      if k != "packages"})
        with h5py.File(h5_path, "r") as f:
            for name in f:
                result.arrays[name] = f[name][()]
                result.dims[name] = tuple(str(d) for d in f[name].attrs["dims"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        raise ResultError(f"{json_path}: not a result summary interp wrote ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise ResultError(f"{json_path}: could not be read ({e})") from None
    return result


def load_results(out_dir: Path, analyzer: str, config: dict | None = None,
                 result_class: type[Result] = Result) -> list[Result]:
    """Every complete unit of an analyzer (made with ``config``, when given)."""
    out = []
    for p in sorted((Path(out_dir) / analyzer).rglob("*.json")):
        if p.name == "summary.json":
            continue
        try:
            result = load_result(p, result_class)    # hashes the HDF5 once: an incomplete unit raises
        except ResultError:
            continue
        if config is None or result.config == config:
            out.append(result)
    return out
