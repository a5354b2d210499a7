"""Prompts from text: a plain-text or JSONL file, tokenized with the checkpoint's own tokenizer and cut into windows
of the model's context, for series that have no task mixture.

Tokenizers are read offline from the checkpoint's folder: ``tokenizer.json`` (the ``tokenizers`` package; what every
Hugging Face family and a hub-cache snapshot carry), or nanoGPT's character vocabulary ``meta.pkl`` (parsed without
resolving any class, ``interp.checkpoints.formats.nanogpt.read_meta``), found beside ``ckpt.pt``, in the folders above
it, or in ``data/<dataset>/`` as nanoGPT keeps it. ``--tokenizer PATH`` names one explicitly.

Text is read and tokenized a block at a time and the ids are streamed to disk, so a file of 1e8 tokens never sits
in memory: the windows end up in a ``.npy`` in the cache folder (written atomically, named by the text file's
stamp, the tokenizer's content and the window), memory-mapped like any token file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from interp.errors import ConfigError, PromptError

TEXT_SUFFIXES = (".txt", ".jsonl", ".text", ".md")
BLOCK_CHARS = 1 << 20


def find_tokenizer(ref_path: Path, fmt: str, explicit: Path | None = None) -> Path:
    """The tokenizer file for a checkpoint (``tokenizer.json`` or nanoGPT's ``meta.pkl``)."""
    if explicit is not None:
        p = Path(explicit)
        p = p / "tokenizer.json" if p.is_dir() else p
        if not p.is_file():
            raise ConfigError(f"--tokenizer {explicit}: no tokenizer.json or meta.pkl there")
        return p
    folder = Path(ref_path) if Path(ref_path).is_dir() else Path(ref_path).parent
    names = ("tokenizer.json",) if fmt == "hf" else ("meta.pkl", "tokenizer.json")
    for cand in [folder, *list(folder.parents)[:2]]:
        for name in names:
            if (cand / name).is_file():
                return cand / name
        if fmt == "nanogpt" and (cand / "data").is_dir():
            hits = sorted((cand / "data").glob("*/meta.pkl"))
            if len(hits) == 1:
                return hits[0]
    raise ConfigError(f"{folder}: no tokenizer ({' or '.join(names)}) beside the checkpoint or in the folders above; "
                      f"pass --tokenizer PATH, or a token file (.npy) with --tokens")


def encoder(tokenizer: Path) -> Callable[[str], list[int]]:
    if tokenizer.name.endswith(".pkl"):
        from interp.checkpoints.formats.nanogpt import read_meta

        stoi = read_meta(tokenizer)["stoi"]

        def encode(text: str) -> list[int]:
            missing = {c for c in text if c not in stoi}
            if missing:
                raise PromptError(f"characters {sorted(missing)[:10]} are not in the vocabulary of {tokenizer}")
            return [stoi[c] for c in text]

        return encode
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(tokenizer))
    except Exception as e:   # the tokenizers package raises its own exception type for a bad file
        raise ConfigError(f"{tokenizer}: not a readable tokenizer.json ({e})") from None
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def _texts(path: Path) -> Iterator[str]:
    """Blocks of text: JSONL lines' ``text`` fields, or ~1 MB pieces of a text file cut at line ends."""
    with open(path, encoding="utf-8", errors="strict") as f:
        if path.suffix == ".jsonl":
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PromptError(f"{path}:{i}: not a JSON line ({e})") from None
                text = row.get("text") if isinstance(row, dict) else None
                if not isinstance(text, str):
                    raise PromptError(f"{path}:{i}: expected an object with a string field 'text'")
                yield text + "\n"
            return
        while block := f.read(BLOCK_CHARS):
            rest = f.readline()
            yield block + rest


def key(text_file: Path, tokenizer: Path, window: int) -> str:
    st = Path(text_file).stat()
    h = hashlib.sha256(Path(tokenizer).read_bytes()).hexdigest()
    return hashlib.sha256(f"{Path(text_file).resolve()}|{st.st_size}|{st.st_mtime_ns}|{h}|{window}".encode()
                          ).hexdigest()[:20]


def tokenize_to_windows(text_file: Path, tokenizer: Path, window: int, out: Path) -> Path:
    """Tokenize ``text_file`` into [n_windows, window] int32 ids at ``out`` (.npy), streaming; reused if present."""
    from interp.trust import atomic

    if out.is_file():
        return out
    if window < 2:
        raise PromptError(f"windows of {window} tokens are too short to predict anything")
    encode = encoder(Path(tokenizer))
    raw = atomic.temp_name(out.with_suffix(".ids"))
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        with open(raw, "wb") as f:
            for text in _texts(Path(text_file)):
                ids = np.asarray(encode(text), dtype=np.int64)
                if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
                    raise PromptError(f"{tokenizer}: token ids outside int32")
                ids.astype(np.int32).tofile(f)
                n += ids.size
        rows = n // window
        if rows == 0:
            raise PromptError(f"{text_file}: {n} tokens, fewer than one window of {window}")
        stream = np.memmap(raw, dtype=np.int32, mode="r", shape=(rows * window,))

        def write(tmp: Path, stream: np.memmap = stream) -> None:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(rows, window))
            for i in range(0, rows, 4096):
                arr[i:i + 4096] = np.asarray(stream[i * window:(i + 4096) * window]).reshape(-1, window)
            arr.flush()
            del arr

        atomic.write_with(out, write)
        del stream   # the memory map must be closed before the raw file is removed
    finally:
        try:
            os.unlink(raw)
        except OSError:
            pass
    return out
