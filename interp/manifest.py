"""The checkpoint manifest: run x seed x step -> file, config, tasks, sha256.

A manifest is YAML (schema below, validated by pydantic; errors name the field). ``--checkpoint-dir DIR`` finds
``checkpoints_manifest.yaml`` or ``manifest.yaml`` in DIR, or builds one from this naming rule:

    DIR/<run>/config.json                      {"model": HookedTransformerConfig kwargs, "mixture": {...}} (optional
                                               "processing"); may also sit in each seed folder
    DIR/<run>/seed<S>/step<T>.safetensors      one checkpoint (native format)
    DIR/<run>/seed<S>/step<T>/config.json      or a Hugging Face-format folder (Pythia/OLMo style step folders)

Paths inside a manifest are relative to the manifest's own (symlink-resolved) directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from interp.errors import ManifestError
from interp.loading import Processing
from interp.tasks import MixtureSpec

SCHEMA_VERSION = 1
MANIFEST_NAMES = ("checkpoints_manifest.yaml", "manifest.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointEntry(_Strict):
    seed: int = Field(ge=0)
    step: int = Field(ge=0)
    path: str
    sha256: str | None = None
    size: int | None = Field(default=None, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("must be 64 lowercase hex digits")
        return v


class ProcessingEntry(_Strict):
    fold_ln: bool = False
    center_writing_weights: bool = False
    center_unembed: bool = False
    dtype: Literal["float32", "float16", "bfloat16", "float64"] = "float32"


class RunEntry(_Strict):
    name: str
    format: Literal["safetensors", "hf"] = "safetensors"
    model: dict[str, Any] = Field(default_factory=dict)
    mixture: dict[str, Any] | None = None
    processing: ProcessingEntry = Field(default_factory=ProcessingEntry)
    group: str | None = None
    labels: dict[str, Any] = Field(default_factory=dict)
    checkpoints: list[CheckpointEntry]

    @field_validator("mixture")
    @classmethod
    def _mixture(cls, v: dict | None) -> dict | None:
        if v is not None:
            MixtureSpec.from_dict(v)  # raises ConfigError with the offending task and field
        return v


class ManifestModel(_Strict):
    schema_version: int = SCHEMA_VERSION
    description: str = ""
    runs: list[RunEntry]

    @field_validator("runs")
    @classmethod
    def _unique(cls, runs: list[RunEntry]) -> list[RunEntry]:
        names = [r.name for r in runs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"run names must be unique; repeated: {sorted(dup)}")
        for r in runs:
            keys = [(c.seed, c.step) for c in r.checkpoints]
            if len(set(keys)) != len(keys):
                raise ValueError(f"run {r.name!r} lists a (seed, step) twice")
        return runs


@dataclass(frozen=True)
class CheckpointRef:
    """Everything needed to load and identify one checkpoint."""

    run: str
    seed: int
    step: int
    path: Path
    model: dict[str, Any]
    processing: Processing
    format: str = "safetensors"
    sha256: str | None = None
    size: int | None = None
    mixture: dict[str, Any] | None = None
    group: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.run}/seed{self.seed}/step{self.step}"

    @property
    def mixture_spec(self) -> MixtureSpec | None:
        return MixtureSpec.from_dict(self.mixture) if self.mixture else None

    def provenance(self) -> dict[str, Any]:
        return {"id": self.id, "run": self.run, "seed": self.seed, "step": self.step, "sha256": self.sha256,
                "processing": self.processing.key(), "labels": self.labels}


class Series:
    """A validated manifest bound to the directory its paths are relative to."""

    def __init__(self, manifest: ManifestModel, root: Path, source: Path | None = None):
        self.manifest, self.root, self.source = manifest, Path(root), source

    @property
    def runs(self) -> list[RunEntry]:
        return self.manifest.runs

    def run(self, name: str) -> RunEntry:
        for r in self.runs:
            if r.name == name:
                return r
        from interp.errors import suggest

        raise ManifestError(f"no run {name!r} in {self.source}; runs: {[r.name for r in self.runs]}."
                            + suggest(name, [r.name for r in self.runs]))

    def refs(self, run: str | None = None, seed: int | None = None, step: int | None = None) -> list[CheckpointRef]:
        out = []
        for r in self.runs if run is None else [self.run(run)]:
            model = r.model or self._hf_model(r)
            for c in r.checkpoints:
                if (seed is None or c.seed == seed) and (step is None or c.step == step):
                    out.append(CheckpointRef(
                        run=r.name, seed=c.seed, step=c.step, path=(self.root / c.path), model=model,
                        processing=Processing(**r.processing.model_dump()), format=r.format, sha256=c.sha256,
                        size=c.size, mixture=r.mixture, group=r.group, labels=r.labels, metrics=c.metrics))
        return sorted(out, key=lambda x: (x.run, x.step, x.seed))

    def _hf_model(self, run: RunEntry) -> dict[str, Any]:
        """A Hugging Face run's architecture (HookedTransformerConfig kwargs) from its first folder's config.json,
        so analyzers can plan hooks without loading a model."""
        if run.format != "hf" or not run.checkpoints:
            return {}
        from interp.loading import hf_model_kwargs

        return hf_model_kwargs(self.root / run.checkpoints[0].path)

    def seed_groups(self) -> list[list[CheckpointRef]]:
        """All seeds of a run at one step: the unit of cross-seed analyses."""
        groups: dict[tuple[str, int], list[CheckpointRef]] = defaultdict(list)
        for ref in self.refs():
            groups[(ref.run, ref.step)].append(ref)
        return [sorted(g, key=lambda r: r.seed) for _, g in sorted(groups.items())]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def file_size(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _format_validation(e: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid manifest"]
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        lines.append(f"  field {loc}: {err['msg']}")
    return "\n".join(lines)


def load_manifest(path: Path) -> Series:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a mapping with 'runs', got {type(raw).__name__}")
    if raw.get("schema_version", SCHEMA_VERSION) > SCHEMA_VERSION:
        raise ManifestError(f"{path}: field schema_version {raw['schema_version']} is newer than this interp "
                            f"understands ({SCHEMA_VERSION}); upgrade interp")
    try:
        model = ManifestModel.model_validate(raw)
    except ValidationError as e:
        raise ManifestError(_format_validation(e, path)) from None
    except Exception as e:  # ConfigError from a mixture validator, re-labelled with the file
        raise ManifestError(f"{path}: {e}") from e
    resolved = path.resolve()
    return Series(model, resolved.parent, resolved)


def save_manifest(model: ManifestModel, path: Path) -> None:
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(model.model_dump(exclude_none=True), sort_keys=False, width=120))
    tmp.replace(path)


_SEED = re.compile(r"^seed(\d+)$")
_STEP = re.compile(r"^step(\d+)(\.safetensors)?$")


def discover(directory: Path) -> Series:
    """A manifest found in ``directory``, or one built from the naming rule in the module docstring."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ManifestError(f"{directory}: checkpoint directory does not exist")
    for name in MANIFEST_NAMES:
        if (directory / name).is_file():
            return load_manifest(directory / name)
    runs = []
    for run_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        checkpoints, fmt, config = [], "safetensors", _read_config(run_dir / "config.json")
        for seed_dir in sorted(p for p in run_dir.iterdir() if p.is_dir() and _SEED.match(p.name)):
            seed = int(_SEED.match(seed_dir.name).group(1))
            config = config or _read_config(seed_dir / "config.json")
            for item in sorted(seed_dir.iterdir()):
                m = _STEP.match(item.name)
                if not m or (item.is_file() and not m.group(2)) or (item.is_dir() and m.group(2)):
                    continue
                if item.is_dir():
                    if not (item / "config.json").is_file():
                        continue
                    fmt = "hf"
                checkpoints.append(CheckpointEntry(seed=seed, step=int(m.group(1)),
                                                   path=str(item.relative_to(directory)),
                                                   sha256=file_sha256(item), size=file_size(item)))
        if not checkpoints:
            continue
        if fmt == "safetensors" and not config.get("model"):
            raise ManifestError(f"{run_dir}: no config.json with a 'model' field (HookedTransformerConfig kwargs); "
                                f"native checkpoints need one in the run or seed folder")
        runs.append(RunEntry(name=run_dir.name, format=fmt, model=config.get("model", {}),
                             mixture=config.get("mixture"), processing=ProcessingEntry(**config.get("processing", {})),
                             checkpoints=checkpoints))
    if not runs:
        raise ManifestError(f"{directory}: no manifest ({' or '.join(MANIFEST_NAMES)}) and no checkpoints matching "
                            f"<run>/seed<S>/step<T>.safetensors or <run>/seed<S>/step<T>/config.json")
    return Series(ManifestModel(runs=runs), directory.resolve(), None)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from e


@dataclass
class VerifyReport:
    ok: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors


def verify(series: Series) -> VerifyReport:
    """Check each file's existence, size and sha256; warn when two steps of one (run, seed) are byte-identical."""
    report = VerifyReport()
    seen: dict[tuple[str, int, str], int] = {}
    for ref in series.refs():
        if not ref.path.exists():
            report.errors.append(f"{ref.path}: missing (checkpoint {ref.id})")
            continue
        size = file_size(ref.path)
        if ref.size is not None and size != ref.size:
            report.errors.append(f"{ref.path}: size {size} bytes, manifest says {ref.size} (checkpoint {ref.id})")
            continue
        digest = file_sha256(ref.path)
        if ref.sha256 is not None and digest != ref.sha256:
            report.errors.append(f"{ref.path}: sha256 {digest[:12]}... does not match the manifest's "
                                 f"{ref.sha256[:12]}... (checkpoint {ref.id})")
            continue
        key = (ref.run, ref.seed, digest)
        if key in seen:
            report.warnings.append(f"{ref.id}: byte-identical to step {seen[key]} (training may not have moved)")
        seen.setdefault(key, ref.step)
        report.ok.append(ref.id)
    return report
