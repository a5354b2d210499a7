"""The trust boundary's paths: every file interp reads because someone else named it passes through here.

- ``safe_name``: run and hook names become file and folder names, so they come from a safe character set;
- ``confine``: a path a manifest names resolves (symlinks followed) inside the folder the user gave, unless the user
  opted in (``allow_outside``); ``regular_file`` refuses devices, FIFOs, sockets and folders where a file is meant;
- ``folder_files``: which files of a model folder are the checkpoint (what is hashed and read).

Hashes and their verification are in ``interp.trust.hashes``.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from pathlib import Path

from interp.errors import IntegrityError, UnsafeInputError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
SAFE_HOOK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._]{0,200}")


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
