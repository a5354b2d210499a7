"""What a folder of checkpoints holds, whatever its layout: the scan behind ``interp manifest init`` and behind a
``--checkpoint-dir`` that has no manifest.

Layouts recognised (run / seed / step proposed from folder and file names):

    <run>/seed<S>/step<T>.safetensors             interp's own (model kwargs in <run>/config.json or seed<S>/)
    <run>/[seed<S>/]step<T>/config.json           Hugging Face folders, also iter<T>/, global_step<T>/ and the
    <run>/[seed<S>/]checkpoint-<T>/config.json      HF Trainer's checkpoint-<T>/
    models--<org>--<name>[-seed<S>]/refs/<rev>    a Hugging Face hub cache: each revision whose name carries a step
                                                    (Pythia's step<T> branches) is a checkpoint; the run is <name>
    <run>/[seed<S>/][step<T>/]ckpt.pt             nanoGPT (the step from the file name ckpt_<T>.pt, else from a
    <run>/ckpt_<T>.pt                               step<T>/ iter<T>/ checkpoint-<T>/ folder, else from iter_num)

The same folder conventions hold for every format: a seed is read from a ``seed<S>`` folder, or a ``-seed<S>`` /
``_seed<S>`` suffix of the run's name (default 0); a step from ``step<T>``, ``iter<T>``, ``global_step<T>`` or
``checkpoint-<T>`` folders where the file name carries none. Files discovery reads on its own (a run's
``config.json``, a checkpoint's ``model_args``) are validated: a bad one is reported as unclassified with the file
and field at fault, never raised mid-scan. Everything else that looks like a checkpoint is reported as
unclassified, with the reason.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp.errors import InterpError
from interp.trust.hashes import Verifier, checkpoint_digest
from interp.trust.paths import SAFE_NAME

STEP_DIR = re.compile(r"^(?:step|iter|global_step|checkpoint-|ckpt[-_]?)(\d+)$")
STEP_FILE = re.compile(r"^step(\d+)\.safetensors$")
REVISION_STEP = re.compile(r"(?:^|[^a-z])(?:step|iter|global_step|checkpoint-)(\d+)$", re.IGNORECASE)
SEED_DIR = re.compile(r"^seed[-_]?(\d+)$")
SEED_SUFFIX = re.compile(r"^(.+?)[-_]seed[-_]?(\d+)$")
MAX_DEPTH = 6
SKIP_DIRS = {".git", "__pycache__", ".cache", "node_modules"}


@dataclass
class Found:
    run: str
    seed: int
    step: int
    path: Path                      # absolute
    format: str                     # safetensors | hf | nanogpt
    model: dict[str, Any] = field(default_factory=dict)
    mixture: dict[str, Any] | None = None
    processing: dict[str, Any] | None = None
    revision: str | None = None
    sha256: str = ""
    size: int = 0


@dataclass
class Scan:
    found: list[Found] = field(default_factory=list)
    unclassified: list[tuple[str, str]] = field(default_factory=list)   # (path relative to the root, why)


def run_and_seed(name: str, seed: int | None = None) -> tuple[str, int]:
    """A run name made safe for file names, and the seed a ``-seed<S>`` suffix gives (unless one is known)."""
    m = SEED_SUFFIX.match(name)
    if m and seed is None:
        name, seed = m.group(1), int(m.group(2))
    safe = re.sub(r"[^A-Za-z0-9._+-]", "-", name).lstrip(".-") or "run"
    return (safe if SAFE_NAME.fullmatch(safe) else safe[:128]), (seed or 0)


def scan(root: Path, hash_files: bool = True, verifier: Verifier | None = None) -> Scan:
    """Every checkpoint under ``root`` in any recognised layout (symlinked folders are not followed)."""
    root = Path(root).resolve()
    out = Scan()
    _walk(root, root, 0, out)
    if hash_files:
        for f in out.found:
            f.sha256, f.size, _ = checkpoint_digest(f.path, verifier, folder=f.format == "hf")
    out.found.sort(key=lambda f: (f.run, f.seed, f.step))
    return out


def _rel(root: Path, p: Path) -> str:
    return os.path.relpath(p, root)


def _walk(root: Path, folder: Path, depth: int, out: Scan) -> None:
    if folder.name.startswith("models--") and (folder / "refs").is_dir():
        _hub_repo(root, folder, out)
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        out.unclassified.append((_rel(root, folder), f"cannot be listed ({e.strerror})"))
        return
    for p in entries:
        if p.is_symlink() and p.is_dir():
            continue
        if p.is_dir():
            if p.name in SKIP_DIRS:
                continue
            if (p / "config.json").is_file() and _is_hf_config(p / "config.json"):
                _hf_folder(root, p, out)
            elif depth < MAX_DEPTH:
                _walk(root, p, depth + 1, out)
        elif p.is_file():
            _file(root, p, out)


def _is_hf_config(path: Path) -> bool:
    try:
        return "architectures" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _context(root: Path, folder: Path) -> tuple[str, int | None]:
    """(run, seed) for a checkpoint living in ``folder``: the seed from the nearest ``seed<S>`` folder, the run
    from the nearest folder above that is not a seed folder (the root's own name when there is none)."""
    seed, cur = None, folder
    while cur != root and SEED_DIR.match(cur.name):
        seed = int(SEED_DIR.match(cur.name).group(1))
        cur = cur.parent
    return (cur.name if cur != root else root.name), seed


def _hf_folder(root: Path, folder: Path, out: Scan) -> None:
    m = STEP_DIR.match(folder.name)
    if not m:
        out.unclassified.append((_rel(root, folder), "a Hugging Face folder without a step in its name (expected "
                                 "step<T>, iter<T>, global_step<T> or checkpoint-<T>)"))
        return
    run, seed = run_and_seed(*_context(root, folder.parent))
    out.found.append(Found(run, seed, int(m.group(1)), folder, "hf"))


def _file(root: Path, p: Path, out: Scan) -> None:
    m = STEP_FILE.match(p.name)
    if m:
        run_dir, seed = _context(root, p.parent)
        config = _native_config(root, p.parent)
        if isinstance(config, str):
            out.unclassified.append((_rel(root, p), config))
            return
        if not config.get("model"):
            out.unclassified.append((_rel(root, p), "no config.json with a 'model' field in its run or seed folder"))
            return
        run, seed = run_and_seed(run_dir, seed)
        out.found.append(Found(run, seed, int(m.group(1)), p, "safetensors", config["model"], config.get("mixture"),
                               config.get("processing")))
        return
    from interp.checkpoints.formats.nanogpt import CKPT_NAME

    if CKPT_NAME.match(p.name):
        _nanogpt(root, p, out)
    elif p.suffix in (".safetensors", ".pt", ".pth", ".bin", ".ckpt") and p.parent.name not in ("blobs",):
        out.unclassified.append((_rel(root, p), "a weights file outside any recognised layout"))


def _native_config(root: Path, folder: Path) -> dict[str, Any] | str:
    """The nearest ``config.json`` with a ``model`` field (in the checkpoint's folder or the one above), or why the
    one found cannot be used (file and field named): an empty dict when there is none."""
    for cand in (folder / "config.json", folder.parent / "config.json"):
        if not cand.is_file() or cand.resolve() == (root.parent / "config.json"):
            continue
        where = _rel(root, cand)
        try:
            cfg = json.loads(cand.read_text())
        except (OSError, UnicodeDecodeError) as e:
            return f"{where} cannot be read ({e})"
        except ValueError as e:
            return f"{where} is not valid JSON ({e})"
        if not isinstance(cfg, dict) or "model" not in cfg:
            continue
        problem = _check_native(cfg)
        return f"{where}: {problem}" if problem else cfg
    return {}


def _check_native(cfg: dict[str, Any]) -> str:
    """What is wrong with a native run's ``config.json`` ("" when nothing): ``model`` must be a mapping of
    HookedTransformerConfig fields to plain values, ``mixture`` and ``processing`` mappings the manifest accepts."""
    from pydantic import ValidationError

    from interp.checkpoints.processing import ProcessingEntry
    from interp.toys.tasks import MixtureSpec

    model = cfg.get("model")
    if not isinstance(model, dict) or not model:
        return f"field 'model' must be a mapping of model settings, got {type(model).__name__}"
    bad = [k for k, v in model.items() if not isinstance(v, (str, int, float, bool, type(None)))]
    if bad:
        return f"field 'model.{bad[0]}' must be a plain value"
    for key, check in (("mixture", MixtureSpec.from_dict), ("processing", ProcessingEntry.model_validate)):
        if cfg.get(key) is not None:
            try:
                check(cfg[key])
            except (InterpError, ValidationError, TypeError, ValueError) as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                return f"field '{key}' is not valid ({first})"
    return ""


def _nanogpt(root: Path, p: Path, out: Scan) -> None:
    from interp.checkpoints.formats import nanogpt

    try:
        ckpt = nanogpt.read(p)
        kwargs = nanogpt.model_kwargs(ckpt["model_args"], p)
    except InterpError as e:
        out.unclassified.append((_rel(root, p), str(e).replace(str(p) + ": ", "")))
        return
    folder = STEP_DIR.match(p.parent.name)           # <run>/[seed<S>/]step<T>/ckpt.pt
    named = nanogpt.step_of(p)                         # ckpt_<T>.pt
    step = named if named is not None else int(folder.group(1)) if folder else nanogpt.step_of(p, ckpt)
    if step is None:
        out.unclassified.append((_rel(root, p), "a nanoGPT checkpoint without iter_num or a step in its name or "
                                 "its folder's"))
        return
    run, seed = run_and_seed(*_context(root, p.parent.parent if folder else p.parent))
    out.found.append(Found(run, seed, step, p, "nanogpt", kwargs))


def _hub_repo(root: Path, repo: Path, out: Scan) -> None:
    """``models--ORG--NAME``: every ref (``refs/<revision>`` holds a 40-hex commit) whose snapshot is present."""
    name = repo.name.split("--")[-1]
    run, seed = run_and_seed(name)
    for ref in sorted(p for p in (repo / "refs").rglob("*") if p.is_file()):
        revision = ref.relative_to(repo / "refs").as_posix()
        commit = ref.read_text().strip()
        snapshot = repo / "snapshots" / commit
        where = f"{_rel(root, repo)} revision {revision}"
        if not re.fullmatch(r"[0-9a-f]{40}", commit) or not snapshot.is_dir():
            out.unclassified.append((where, f"its snapshot {commit[:12]} is not in the cache"))
            continue
        m = REVISION_STEP.search(revision)
        if not m:
            out.unclassified.append((where, "the revision name carries no step (expected e.g. step1000)"))
            continue
        out.found.append(Found(run, seed, int(m.group(1)), snapshot, "hf", revision=revision))
