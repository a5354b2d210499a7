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

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from interp.checkpoints.processing import ProcessingEntry, Strict
from interp.errors import ConfigError, InterpError, ManifestError
from interp.results import unit_id
from interp.toys.tasks import MixtureSpec
from interp.trust import safe_yaml
from interp.trust.hashes import FileStamp, Verifier, checkpoint_digest
from interp.trust.paths import Confiner, confine, safe_name

SCHEMA_VERSION = 1
MANIFEST_NAMES = ("checkpoints_manifest.yaml", "manifest.yaml")
MAX_MANIFEST_BYTES = 64 << 20        # a manifest of a million checkpoints is ~150 MB of YAML; refuse beyond 64 MB
MAX_YAML_NODES = 20_000_000          # after alias expansion: a billion-laughs document stops here


def bundled_manifest() -> Path:
    """The manifest of the tiny series bundled with interp (``interp/data/bundled``)."""
    # a plain path, not importlib.resources: the checkpoints are read by path (safetensors, h5py), and interp is
    # never installed zipped
    return Path(__file__).resolve().parents[1] / "data" / "bundled" / "manifest.yaml"


class CheckpointEntry(Strict):
    seed: int = Field(ge=0)
    step: int = Field(ge=0)
    path: str
    sha256: str | None = None
    size: int | None = Field(default=None, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)
    revision: str | None = None        # a hub-cache revision (e.g. Pythia's step1000 branch)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("must be 64 lowercase hex digits")
        return v


class InputsEntry(Strict):
    """What a run is evaluated on, named by the manifest (paths relative to its folder, confined like checkpoints):
    the defaults for the flags of the same meaning (``--tokens``, ``--tasks``, ``--concepts``, ``--tokenizer``),
    which override them."""

    tokens: str | None = None
    tasks: str | None = None
    concepts: str | None = None
    tokenizer: str | None = None


class RunEntry(Strict):
    name: str
    format: Literal["safetensors", "hf", "nanogpt"] = "safetensors"
    model: dict[str, Any] = Field(default_factory=dict)
    mixture: dict[str, Any] | None = None
    language: dict[str, Any] | None = None   # a synthetic language (interp.toys.language) instead of a task mixture
    processing: ProcessingEntry = Field(default_factory=ProcessingEntry)
    group: str | None = None
    labels: dict[str, Any] = Field(default_factory=dict)
    inputs: InputsEntry = Field(default_factory=InputsEntry)
    checkpoints: list[CheckpointEntry]

    @field_validator("mixture")
    @classmethod
    def _mixture(cls, v: dict | None) -> dict | None:
        if v is not None:
            try:
                MixtureSpec.from_dict(v)
            except (ConfigError, TypeError) as e:   # named task and field; pydantic adds where in the manifest
                raise ValueError(str(e)) from None
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: dict | None) -> dict | None:
        if v is not None:
            from interp.toys.language import LanguageSpec

            try:
                LanguageSpec.from_overrides(v)
            except (ConfigError, TypeError) as e:
                raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _vocabulary_fits(self) -> RunEntry:
        if self.mixture is not None and self.language is not None:
            raise ValueError("a run has a task mixture or a language, not both")
        model_vocab = self.model.get("d_vocab")
        for name, data in (("mixture", self.mixture), ("language", self.language)):
            if data and model_vocab is not None and data.get("d_vocab", 0) > model_vocab:
                raise ValueError(f"{name}.d_vocab {data['d_vocab']} exceeds the model's d_vocab {model_vocab}: "
                                 f"its tokens would index past the embedding")
        return self


class ManifestModel(Strict):
    schema_version: int = SCHEMA_VERSION
    description: str = ""
    runs: list[RunEntry]

    @field_validator("runs")
    @classmethod
    def _unique(cls, runs: list[RunEntry]) -> list[RunEntry]:
        seen: set[str] = set()
        for r in runs:
            if r.name in seen:
                raise ValueError(f"run names must be unique; repeated: {r.name!r}")
            seen.add(r.name)
            keys = {(c.seed, c.step) for c in r.checkpoints}
            if len(keys) != len(r.checkpoints):
                raise ValueError(f"run {r.name!r} lists a (seed, step) twice")
        return runs


DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class Processing:
    """Weight processing the loader applies after reading a checkpoint, as the manifest declares it: all off by
    default, and part of every cache key and provenance."""

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
    revision: str | None = None
    language: dict[str, Any] | None = None
    inputs: dict[str, Path] = field(default_factory=dict)   # the run's own evaluation inputs (InputsEntry)
    # set by ``verified``: what the file(s) looked like when their bytes were checked; the loader refuses them if
    # they changed since
    stamps: tuple[FileStamp, ...] = field(default=(), compare=False)

    def verified(self, verifier: Verifier | None = None) -> CheckpointRef:
        """This ref after checking its bytes: the file (or a folder's model files) hashed by streaming, compared
        with the manifest's size and sha256, and the sha256 actually read recorded. Raises ``IntegrityError``."""
        from interp.errors import IntegrityError

        digest, size, stamps = checkpoint_digest(self.path, verifier, folder=self.format == "hf")
        if self.size is not None and size != self.size:
            raise IntegrityError(f"{self.path}: size {size} bytes, the manifest says {self.size} (checkpoint "
                                 f"{self.id}); the file is truncated, extended or another file")
        if self.sha256 is not None and digest != self.sha256:
            raise IntegrityError(f"{self.path}: sha256 {digest[:16]}... does not match the manifest's "
                                 f"{self.sha256[:16]}... (checkpoint {self.id}); the file is damaged or was replaced "
                                 f"(update the manifest if the replacement is intended)")
        return replace(self, sha256=digest, size=size, stamps=stamps)

    @property
    def id(self) -> str:
        return unit_id(self.run, self.step, self.seed)

    @property
    def mixture_spec(self) -> MixtureSpec | None:
        return MixtureSpec.from_dict(self.mixture) if self.mixture else None

    @property
    def language_spec(self) -> Any:
        from interp.toys.language import LanguageSpec

        return LanguageSpec.from_overrides(self.language) if self.language else None

    @property
    def n_layers(self) -> int:
        return int(self.model.get("n_layers", 0))

    def train_settings(self) -> dict[str, int]:
        """How interp's trainer drew this run's batches (``batch_size``, ``data_seed``), from the ``train`` block of
        the ``config.json`` it writes beside a seed's checkpoints; {} for checkpoints it did not train (or a file
        without a valid block). Only integers are read: the file is data, never code."""
        if self.format != "safetensors":
            return {}
        import json

        for folder in list(Path(self.path).parents)[:2]:
            cfg = folder / "config.json"
            if not cfg.is_file():
                continue
            try:
                train = json.loads(cfg.read_text()).get("train") or {}
            except (OSError, ValueError, UnicodeDecodeError, AttributeError):
                return {}
            out = {k: train[k] for k in ("batch_size", "data_seed", "seed")
                   if isinstance(train.get(k), int) and not isinstance(train.get(k), bool) and train[k] >= 0}
            if "data_seed" not in out and "seed" in out:
                out["data_seed"] = out["seed"]
            return out
        return {}

    def provenance(self) -> dict[str, Any]:
        out = {"id": self.id, "run": self.run, "seed": self.seed, "step": self.step, "sha256": self.sha256,
               "size": self.size, "format": self.format, "processing": self.processing.key(), "labels": self.labels}
        return out | ({"revision": self.revision} if self.revision else {})


class Series:
    """A validated manifest bound to the directory its paths are relative to. Every path it names must resolve
    (symlinks followed) inside that directory unless ``allow_outside_paths``; run names must be safe file names."""

    def __init__(self, manifest: ManifestModel, root: Path, source: Path | None = None,
                 allow_outside_paths: bool = False):
        self.manifest, self.root, self.source = manifest, Path(root), source
        self.allow_outside_paths = allow_outside_paths
        self._models: dict[str, dict[str, Any]] = {}   # run -> architecture, read once
        self._refs: list[CheckpointRef] | None = None
        where = source or root
        for r in manifest.runs:
            safe_name(r.name, f"{where}: run name")

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
        if run is not None:
            self.run(run)   # an unknown run is an error naming the runs
        return [r for r in self._all_refs() if (run is None or r.run == run) and (seed is None or r.seed == seed)
                and (step is None or r.step == step)]

    def _all_refs(self) -> list[CheckpointRef]:
        if self._refs is None:
            out = []
            where = self.source or self.root
            confined = Confiner(self.root, self.allow_outside_paths)
            for r in self.runs:
                model = self.model_kwargs(r)
                processing = Processing(**r.processing.model_dump())
                inputs = {k: confined(v, f"{where}: run {r.name!r} inputs.{k}")
                          for k, v in r.inputs.model_dump().items() if v is not None}
                for c in r.checkpoints:
                    path = confined(c.path, f"{where}: run {r.name!r} seed {c.seed} step {c.step}: path")
                    out.append(CheckpointRef(
                        run=r.name, seed=c.seed, step=c.step, path=path, model=model, processing=processing,
                        format=r.format, sha256=c.sha256, size=c.size, mixture=r.mixture, group=r.group,
                        labels=r.labels, metrics=c.metrics, revision=c.revision, language=r.language,
                        inputs=inputs))
            self._refs = sorted(out, key=lambda x: (x.run, x.step, x.seed))
        return self._refs

    def model_kwargs(self, run: RunEntry) -> dict[str, Any]:
        """A run's architecture (HookedTransformerConfig kwargs): the manifest's, or for a Hugging Face run its
        first folder's config.json, read once per series, so analyzers can plan hooks without loading a model."""
        if run.name not in self._models:
            model = run.model
            if not model and run.format == "hf" and run.checkpoints:
                from interp.checkpoints.formats.hf import hf_model_kwargs

                where = self.source or self.root
                model = hf_model_kwargs(confine(self.root / run.checkpoints[0].path, self.root,
                                                f"{where}: run {run.name!r} path", self.allow_outside_paths))
            self._models[run.name] = model
        return self._models[run.name]

    def seed_groups(self) -> list[list[CheckpointRef]]:
        """All seeds of a run at one step: the unit of cross-seed analyses."""
        groups: dict[tuple[str, int], list[CheckpointRef]] = defaultdict(list)
        for ref in self.refs():
            groups[(ref.run, ref.step)].append(ref)
        return [sorted(g, key=lambda r: r.seed) for _, g in sorted(groups.items())]


def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint file, or of a folder's model files (``interp.trust.checkpoint_digest``)."""
    return checkpoint_digest(Path(path))[0]


def file_size(path: Path) -> int:
    return checkpoint_digest(Path(path))[1]


def _format_validation(e: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid manifest"]
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        lines.append(f"  field {loc}: {err['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path) -> Any:
    """A YAML document from an untrusted file: bounded in bytes and in alias expansion, plain data only, fast on
    large manifests (``interp.trust.safe_yaml``)."""
    from interp.trust.paths import regular_file

    try:
        regular_file(path, "manifest")
    except InterpError as e:
        raise ManifestError(str(e)) from None
    return safe_yaml.load(path, MAX_MANIFEST_BYTES, MAX_YAML_NODES)


def load_manifest(path: Path, allow_outside_paths: bool = False) -> Series:
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest file does not exist")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a mapping with 'runs', got {type(raw).__name__}")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ManifestError(f"{path}: field schema_version {version!r} is not one this interp understands "
                            f"(<= {SCHEMA_VERSION}); upgrade interp")
    try:
        model = ManifestModel.model_validate(raw)
    except ValidationError as e:
        raise ManifestError(_format_validation(e, path)) from None
    resolved = path.resolve()
    return Series(model, resolved.parent, resolved, allow_outside_paths)


def save_manifest(model: ManifestModel, path: Path) -> None:
    from interp.trust import atomic

    atomic.write_text(Path(path), yaml.dump(model.model_dump(exclude_none=True), sort_keys=False, width=120,
                                            Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))


def find_manifest(directory: Path) -> Path | None:
    return next((Path(directory) / n for n in MANIFEST_NAMES if (Path(directory) / n).exists()), None)


def manifest_from_scan(scan: Any, manifest_dir: Path) -> ManifestModel:
    """A manifest of what ``interp.checkpoints.discovery.scan`` found, with paths relative to ``manifest_dir``. A run is
    one (name, format); a name used by two layouts gets the format appended to the second."""
    import os

    runs: dict[tuple[str, str], RunEntry] = {}
    names: set[str] = set()
    for f in scan.found:
        key = (f.run, f.format)
        if key not in runs:
            name = f.run if f.run not in names else f"{f.run}-{f.format}"
            names.add(name)
            runs[key] = RunEntry(name=name, format=f.format, model=f.model, mixture=f.mixture,
                                 processing=ProcessingEntry(**(f.processing or {})), checkpoints=[])
        runs[key].checkpoints.append(CheckpointEntry(
            seed=f.seed, step=f.step, path=os.path.relpath(f.path, manifest_dir), sha256=f.sha256, size=f.size,
            revision=f.revision))
    for run in runs.values():
        seen: dict[tuple[int, int], str] = {}
        for c in run.checkpoints:
            if (c.seed, c.step) in seen:
                raise ManifestError(f"run {run.name!r}: two checkpoints claim seed {c.seed} step {c.step} "
                                    f"({seen[(c.seed, c.step)]} and {c.path}); write the manifest by hand")
            seen[(c.seed, c.step)] = c.path
    return ManifestModel(runs=list(runs.values()))


def discover(directory: Path, allow_outside_paths: bool = False) -> Series:
    """A manifest found in ``directory``, or one built by scanning it (``interp.checkpoints.discovery``: interp's own
    layout, Hugging Face step / Trainer folders, hub-cache revisions, nanoGPT checkpoints)."""
    from interp.checkpoints.discovery import scan

    directory = Path(directory)
    if not directory.is_dir():
        raise ManifestError(f"{directory}: checkpoint directory does not exist")
    found = find_manifest(directory)
    if found is not None:
        return load_manifest(found, allow_outside_paths)
    result = scan(directory)
    if not result.found:
        why = "".join(f"\n  {p}: {reason}" for p, reason in result.unclassified[:10])
        raise ManifestError(f"{directory}: no manifest ({' or '.join(MANIFEST_NAMES)}) and no checkpoint in a layout "
                            f"interp recognises: <run>/seed<S>/step<T>.safetensors, Hugging Face folders "
                            f"<run>/[seed<S>/]step<T>/ (or checkpoint-<T>/, iter<T>/), a hub cache "
                            f"(models--ORG--NAME with step revisions), nanoGPT ckpt.pt{why}")
    return Series(manifest_from_scan(result, directory.resolve()), directory.resolve(), None, allow_outside_paths)


@dataclass
class VerifyReport:
    ok: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors


def verify(series: Series) -> VerifyReport:
    """Check each checkpoint's size and sha256 against the manifest (streaming; devices, FIFOs and paths outside
    the folder refused); warn when two steps of one (run, seed) are byte-identical, and when there is no manifest to
    check against."""
    report = VerifyReport()
    if series.source is None:
        report.errors.append(f"no manifest in {series.root}: nothing to verify against (the series was discovered "
                             f"from file names, and its hashes from the files themselves); write one with "
                             f"`interp manifest init {series.root}` and keep it with the checkpoints")
    seen: dict[tuple[str, int, str], int] = {}
    try:
        refs = series.refs()
    except InterpError as e:
        report.errors.append(str(e))
        return report
    for ref in refs:
        try:
            checked = ref.verified()
        except InterpError as e:
            report.errors.append(str(e))
            continue
        key = (ref.run, ref.seed, checked.sha256)
        if key in seen:
            report.warnings.append(f"{ref.id}: byte-identical to step {seen[key]} (training may not have moved)")
        seen.setdefault(key, ref.step)
        report.ok.append(ref.id)
    return report
