"""The trust boundary's hashes: a checkpoint's bytes are hashed (streaming) and checked against the manifest's size
and sha256 before anything is computed from them; hashes are remembered by (path, size, mtime, inode), so an
unchanged file is hashed once, and a file replaced after verification is caught before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from interp.errors import IntegrityError
from interp.trust.paths import folder_files, regular_file

BLOCK = 1 << 20


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
        from interp.trust import atomic

        with self._lock:
            rows = [{"stamp": vars(k), "sha256": v} for k, v in self._known.items()]
        atomic.write_text(self._store, json.dumps(rows))


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
