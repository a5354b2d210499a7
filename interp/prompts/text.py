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

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Codec:
    """A checkpoint's tokenizer as interp uses it: ``encode`` (no special tokens added), ``decode``, the BOS id the
    family's tokenizer puts in front of a text (None when it adds none: GPT-2, GPT-NeoX and Pythia add none, Llama,
    Mistral and OLMo do), the ids it marks special, and an id to pad with."""

    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]
    bos: int | None = None
    special_ids: tuple[int, ...] = ()

    @property
    def pad(self) -> int:
        return self.special_ids[0] if self.special_ids else 0


@functools.lru_cache(maxsize=16)
def codec(tokenizer: Path) -> Codec:
    """The codec of a ``tokenizer.json`` (the ``tokenizers`` package) or of nanoGPT's character ``meta.pkl``."""
    if tokenizer.name.endswith(".pkl"):
        from interp.checkpoints.formats.nanogpt import read_meta

        meta = read_meta(tokenizer)
        stoi, itos = meta["stoi"], meta.get("itos") or {i: s for s, i in meta["stoi"].items()}

        def encode(text: str) -> list[int]:
            missing = {c for c in text if c not in stoi}
            if missing:
                raise PromptError(f"characters {sorted(missing)[:10]} are not in the vocabulary of {tokenizer}")
            return [stoi[c] for c in text]

        return Codec(encode, lambda ids: "".join(str(itos.get(i, "?")) for i in ids))
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(tokenizer))
    except Exception as e:   # the tokenizers package raises its own exception type for a bad file
        raise ConfigError(f"{tokenizer}: not a readable tokenizer.json ({e})") from None
    probe = "a"
    plain, full = tok.encode(probe, add_special_tokens=False).ids, tok.encode(probe, add_special_tokens=True).ids
    bos = full[0] if len(full) > len(plain) and full[1:1 + len(plain)] == plain else None
    special = tuple(sorted(i for i, added in tok.get_added_tokens_decoder().items() if added.special))
    return Codec(lambda text: tok.encode(text, add_special_tokens=False).ids,
                 lambda ids: tok.decode(list(ids), skip_special_tokens=False), bos, special)


def encoder(tokenizer: Path) -> Callable[[str], list[int]]:
    return codec(Path(tokenizer)).encode


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


def key(text_file: Path, tokenizer: Path, window: int, max_tokens: int | None = None) -> str:
    """What a text file's windows depend on: the file (path, size, modification time), the tokenizer's bytes, the
    window, the token cap, and the window layout (BOS first where the tokenizer adds one: version 2)."""
    st = Path(text_file).stat()
    h = hashlib.sha256(Path(tokenizer).read_bytes()).hexdigest()
    parts = f"{Path(text_file).resolve()}|{st.st_size}|{st.st_mtime_ns}|{h}|{window}|layout2|{max_tokens}"
    return hashlib.sha256(parts.encode()).hexdigest()[:20]


def tokenize_to_windows(text_file: Path, tokenizer: Path, window: int, out: Path,
                        max_tokens: int | None = None) -> Path:
    """Tokenize ``text_file`` into [n_windows, window] int32 ids at ``out`` (.npy), streaming; reused if present.
    Each window starts with the tokenizer's BOS where the family puts one in front of a text (then ``window - 1``
    text tokens follow), as the model saw text in training; ``max_tokens`` stops after that many text tokens."""
    from interp.trust import atomic

    if out.is_file():
        return out
    if window < 2:
        raise PromptError(f"windows of {window} tokens are too short to predict anything")
    c = codec(Path(tokenizer))
    body = window - (c.bos is not None)
    raw = atomic.temp_name(out.with_suffix(".ids"))
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        with open(raw, "wb") as f:
            for text in _texts(Path(text_file)):
                ids = np.asarray(c.encode(text), dtype=np.int64)
                if max_tokens is not None:
                    ids = ids[:max(0, max_tokens - n)]
                if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
                    raise PromptError(f"{tokenizer}: token ids outside int32")
                ids.astype(np.int32).tofile(f)
                n += ids.size
                if max_tokens is not None and n >= max_tokens:
                    break
        rows = n // body
        if rows == 0:
            raise PromptError(f"{text_file}: {n} tokens, fewer than one window of {window}")
        stream = np.memmap(raw, dtype=np.int32, mode="r", shape=(rows * body,))

        def write(tmp: Path, stream: np.memmap = stream) -> None:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(rows, window))
            for i in range(0, rows, 4096):
                block = np.asarray(stream[i * body:(i + 4096) * body]).reshape(-1, body)
                if c.bos is None:
                    arr[i:i + len(block)] = block
                else:
                    arr[i:i + len(block), 0] = c.bos
                    arr[i:i + len(block), 1:] = block
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
