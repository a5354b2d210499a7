"""The trust boundary: every file interp reads because someone else named it passes through here.

- ``safe_name``: run and hook names become file and folder names, so they come from a safe character set;
- ``confine``: a path a manifest names resolves (symlinks followed) inside the folder the user gave, unless the user
  opted in (``allow_outside``); ``regular_file`` refuses devices, FIFOs, sockets and folders where a file is meant;
- ``Verifier``: a checkpoint's bytes are hashed (streaming) and checked against the manifest's size and sha256
  before anything is computed from them; hashes are remembered by (path, size, mtime, inode), so an unchanged
  file is hashed once, and a file replaced after verification is caught before it is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from interp.errors import IntegrityError, UnsafeInputError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
SAFE_HOOK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._]{0,200}")
BLOCK = 1 << 20


def safe_name(value: str, what: str) -> str:
    """``value`` if it can be a single file-name component: letters, digits, ``._+-``, not starting with a dot or
    dash (so not ``..``), at most 128 characters."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise UnsafeInputError(f"{what} {value!r} cannot be used as a file name: use 1-128 letters, digits, '.', "
                               f"'_', '+' or '-', starting with a letter or digit")
    return value


def safe_hook(hook: str) -> str:
    if not SAFE_HOOK.fullmatch(hook) or ".." in hook:
        raise UnsafeInputError(f"hook name {hook!r} cannot be used as a file name (letters, digits, '_' and "
                               f"single dots, e.g. 'blocks.0.mlp.hook_post')")
    return hook


def confine(path: Path, root: Path, what: str, allow_outside: bool = False) -> Path:
    """``path`` resolved (symlinks followed); it must lie inside ``root`` unless ``allow_outside``."""
    return Confiner(root, allow_outside)(path, what)


class Confiner:
    """``confine`` for many paths under one root (the root is resolved once)."""

    def __init__(self, root: Path, allow_outside: bool = False):
        self.root = _resolve(str(root))
        self.prefix = self.root.rstrip(os.sep) + os.sep
        self.allow_outside = allow_outside

    def __call__(self, path: Path | str, what: str) -> Path:
        resolved = _resolve(os.path.join(self.root, path) if isinstance(path, str) else str(path))
        if not self.allow_outside and resolved != self.root and not resolved.startswith(self.prefix):
            raise UnsafeInputError(f"{what} {path} resolves to {resolved}, outside {self.root}; interp reads only "
                                   f"inside the checkpoint folder (pass allow_outside_paths=True / "
                                   f"--allow-outside-paths to permit it)")
        return Path(resolved)


@functools.lru_cache(maxsize=4096)
def _resolve_dir(folder: str) -> str:
    return os.path.realpath(folder)


def _resolve(path: str) -> str:
    """``os.path.realpath``, with each folder resolved once (a manifest of 100,000 files in a few folders costs
    one lstat per file, not one per path component). A final component that is a symlink is followed fully."""
    path = os.path.abspath(path)
    head, tail = os.path.split(path)
    if not tail:
        return _resolve_dir(path)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return os.path.realpath(path)
    except OSError:
        pass
    return os.path.join(_resolve_dir(head), tail) if tail not in (".", "..") else os.path.realpath(path)


def regular_file(path: Path, what: str) -> os.stat_result:
    """The stat of a regular file (symlinks followed); devices, FIFOs, sockets and folders are refused."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise IntegrityError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise UnsafeInputError(f"{what} {path} cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnsafeInputError(f"{what} {path} is a folder where a file is expected")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeInputError(f"{what} {path} is not a regular file (a device, FIFO or socket); refused")
    return st


def regular_folder(path: Path, what: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise IntegrityError(f"{what} {path} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeInputError(f"{what} {path} is not a folder")


def sha256_file(path: Path, size: int | None = None) -> str:
    """Streaming sha256 of a regular file, reading at most ``size`` bytes when given (+1 to notice growth)."""
    h = hashlib.sha256()
    remaining = None if size is None else size + 1
    with open(path, "rb") as f:
        while remaining is None or remaining > 0:
            block = f.read(BLOCK if remaining is None else min(BLOCK, remaining))
            if not block:
                break
            h.update(block)
            if remaining is not None:
                remaining -= len(block)
    return h.hexdigest()


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's current bytes without reading them."""

    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path, st: os.stat_result) -> FileStamp:
        return cls(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


class Verifier:
    """Hashes files once per (path, size, mtime, inode) and checks them against expected digests. Thread-safe;
    ``store``: a JSON file that remembers verified hashes across runs (written atomically)."""

    def __init__(self, store: Path | None = None):
        self._lock = threading.Lock()
        self._store = Path(store) if store else None
        self._known: dict[FileStamp, str] = {}
        self.hashed = 0   # files actually read (tests count them)
        if self._store and self._store.is_file():
            try:
                for row in json.loads(self._store.read_text()):
                    self._known[FileStamp(**row["stamp"])] = row["sha256"]
            except (ValueError, KeyError, TypeError):
                self._known.clear()   # a damaged memo only costs rehashing

    def digest(self, path: Path, what: str = "file") -> tuple[str, FileStamp]:
        st = regular_file(path, what)
        stamp = FileStamp.of(path, st)
        with self._lock:
            known = self._known.get(stamp)
        if known is None:
            known = sha256_file(path)
            if FileStamp.of(path, regular_file(path, what)) != stamp:
                raise IntegrityError(f"{what} {path} changed while it was being hashed; rerun when it is stable")
            with self._lock:
                self._known[stamp] = known
                self.hashed += 1
        return known, stamp

    def still(self, stamp: FileStamp, what: str) -> None:
        """Raise if the file is no longer the one that was verified (replaced, grown, touched)."""
        now = FileStamp.of(Path(stamp.path), regular_file(Path(stamp.path), what))
        if now != stamp:
            raise IntegrityError(f"{what} {stamp.path} changed after it was verified; rerun")

    _instances: dict[str | None, Verifier] = {}

    @classmethod
    def default(cls, store: Path | None = None) -> Verifier:
        """The process's verifier (for ``store``, when given): its memo is shared by every load in the process."""
        key = str(Path(store).resolve()) if store else None
        if key not in cls._instances:
            cls._instances[key] = cls(store)
        return cls._instances[key]

    def save(self) -> None:
        if self._store is None:
            return
        from interp import atomic

        with self._lock:
            rows = [{"stamp": vars(k), "sha256": v} for k, v in self._known.items()]
        atomic.write_text(self._store, json.dumps(rows))


# Which files of a Hugging Face-style folder make up the checkpoint: what is hashed, verified and read. Tokenizer
# files and READMEs are not the weights; a folder never means "everything under it" (a path of /usr would
# otherwise hash all of /usr).
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
MODEL_FILE_NAMES = ("config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def folder_files(folder: Path, what: str = "checkpoint folder") -> list[Path]:
    """The files of a checkpoint folder that hold its model: config.json, weight files and their index, sorted.
    Subfolders are not entered."""
    regular_folder(folder, what)
    files = sorted(p for p in Path(folder).iterdir()
                   if p.name in MODEL_FILE_NAMES or p.name.endswith(MODEL_FILE_SUFFIXES))
    if not files:
        raise IntegrityError(f"{what} {folder} holds no config.json or weight files")
    return files


def checkpoint_digest(path: Path, verifier: Verifier | None = None,
                      folder: bool | None = None) -> tuple[str, int, tuple[FileStamp, ...]]:
    """(sha256, size in bytes, stamps) of a checkpoint file, or of a folder's model files: for a folder, the sha256
    of the lines ``name NUL file-sha256`` of its model files (so each file is hashed once, by streaming).
    ``folder``: whether a folder is expected (None: whatever is there)."""
    verifier = verifier or Verifier.default()
    path = Path(path)
    if folder if folder is not None else path.is_dir():
        lines, size, stamps = [], 0, []
        for f in folder_files(path):
            digest, stamp = verifier.digest(f, "checkpoint file")
            lines.append(f"{f.name}\0{digest}\n")
            size += stamp.size
            stamps.append(stamp)
        return hashlib.sha256("".join(lines).encode()).hexdigest(), size, tuple(stamps)
    digest, stamp = verifier.digest(path, "checkpoint file")
    return digest, stamp.size, (stamp,)
