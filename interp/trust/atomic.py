"""Every file interp writes appears whole or not at all: written under a temporary name in the same folder, fsynced,
then renamed over the final name (``os.replace`` is atomic on POSIX). A failed write (a full disk, a read-only
folder, a crash) removes its temporary file and raises ``OutputError`` naming the file, so nothing half-written is
ever left where a reader would take it for complete.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from interp.errors import OutputError

TMP_MARK = ".tmp-interp-"


def temp_name(final: Path) -> Path:
    """A temporary name beside ``final``, unique per process and thread (Dask workers run jobs on threads)."""
    final = Path(final)
    return final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}-{threading.get_ident()}")


def describe_os_error(e: OSError, path: Path) -> str:
    if e.errno == errno.ENOSPC:
        return f"{path}: no space left on the device; free some space (or choose another --out) and rerun"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{path}: cannot write here ({e.strerror}); choose a writable --out"
    return f"{path}: could not be written ({e.strerror or e})"


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yields a temporary path to write ``final``'s content to; on success it is fsynced and renamed to ``final``.
    On any error the temporary file is removed; OS errors become ``OutputError``."""
    final = Path(final)
    tmp = temp_name(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, final)
    except OSError as e:
        _remove(tmp)
        raise OutputError(describe_os_error(e, final)) from None
    except BaseException:
        _remove(tmp)
        raise


def ensure_space(final: Path, nbytes: int, margin: int = 1 << 20) -> None:
    """Raise ``OutputError`` when the file system of ``final`` has less than ``nbytes`` (+ a margin) free: checked
    before HDF5 writes, which do not fail cleanly on a full disk."""
    import shutil

    try:
        free = shutil.disk_usage(Path(final).parent).free
    except OSError:
        return
    if free < nbytes + margin:
        raise OutputError(f"{final}: no space left on the device for {nbytes / 2**20:.1f} MB (free "
                          f"{free / 2**20:.1f} MB); free some space (or choose another --out) and rerun")


def write_bytes(final: Path, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(final)


def write_text(final: Path, text: str) -> Path:
    return write_bytes(final, text.encode())


def write_with(final: Path, writer: Callable[[Path], None]) -> Path:
    """``writer(tmp)`` writes the content (h5py, matplotlib, ...); the rest as ``atomic_path``."""
    with atomic_path(final) as tmp:
        writer(tmp)
    return Path(final)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def sweep_temporaries(folder: Path) -> int:
    """Remove temporary files a killed run left under ``folder`` (ours only: the name carries ``TMP_MARK``) whose
    writer process is gone. Returns how many were removed."""
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for p in folder.rglob(f"*{TMP_MARK}*"):
        pid = p.name.rpartition(TMP_MARK)[2].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)) and p.is_file() and not p.is_symlink():
            _remove(p)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
