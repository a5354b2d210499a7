"""A user's tasks as data: a JSONL task file, one item a line, tokenized with each checkpoint's own tokenizer.

    {"task": "compare", "prompt": "q7 > k2 ?", "answer": " yes", "choices": [" yes", " no"]}

``task``, ``prompt`` and ``answer`` are required strings; ``choices`` (a list of at least two distinct strings that
holds the answer) and ``split`` (``train`` or ``test``) are optional; every other key is kept as metadata. Two
metadata keys mean something to interp: ``frequency`` (the task's share of training sequences, in (0, 1], the same
on every line of a task: it names the rare and the common task) and ``operands`` (a list of strings whose first
tokens are the task's input features, for incidental-polysemanticity; without it, a task's operands are the prompt
tokens that vary between its items).

Every line is validated before anything runs, and each error names the file and line. The file's limits are
refusals, not truncations: at most ``MAX_FILE_BYTES`` bytes, ``MAX_LINE_BYTES`` a line and ``MAX_ITEMS`` items.

Tokenization (ours, the same rule as ``interp.prompts.choices``): the prompt and the answer are tokenized apart and
their ids concatenated, the tokenizer's BOS first where the family puts one in front of a text, so an answer
carries its own leading space (``" yes"``). The *label position* is the prompt's last token; the scored predictions
are the answer's tokens; rows are right-padded after the answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.errors import ConfigError, PromptError

if TYPE_CHECKING:
    from interp.prompts.prompt_set import PromptSet
    from interp.prompts.text import Codec

MAX_FILE_BYTES = 256 << 20
MAX_LINE_BYTES = 1 << 16
MAX_ITEMS = 1_000_000
MAX_NAME = 100
RESERVED = ("background",)      # the name of the rows that belong to no task
SPLITS = ("train", "test")


@dataclass(frozen=True)
class TaskItem:
    task: str
    prompt: str
    answer: str
    line: int
    choices: tuple[str, ...] | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TaskFile:
    """The validated items of a task file, with the tasks in order of first appearance."""

    path: Path
    items: tuple[TaskItem, ...]
    sha256: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(it.task for it in self.items))

    @property
    def frequency(self) -> dict[str, float]:
        return {it.task: float(it.meta["frequency"]) for it in self.items if "frequency" in it.meta}

    def split(self, which: str) -> list[TaskItem]:
        """The items of ``which`` (train / test / all); a file without splits evaluates every item."""
        if which == "all" or not any(it.split for it in self.items):
            return list(self.items)
        return [it for it in self.items if (it.split or "test") == which]


_MEMO: dict[tuple, TaskFile] = {}


def read_task_file(path: Path) -> TaskFile:
    """The validated task file at ``path``, read once per version of the file (size, modification time, inode)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        raise ConfigError(f"task file {path} does not exist (--tasks)") from None
    if not path.is_file():
        raise ConfigError(f"task file {path} is not a regular file (--tasks)")
    if st.st_size > MAX_FILE_BYTES:
        raise PromptError(f"{path}: {st.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} a task file may hold; "
                          f"split it, or sample fewer items per task")
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if memo_key not in _MEMO:
        _MEMO[memo_key] = _read(path)
    return _MEMO[memo_key]


def _read(path: Path) -> TaskFile:
    data = path.read_bytes()
    items: list[TaskItem] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        if len(raw) > MAX_LINE_BYTES:
            raise PromptError(f"{where}: a line of {len(raw):,} bytes, more than {MAX_LINE_BYTES:,}")
        if len(items) == MAX_ITEMS:
            raise PromptError(f"{where}: more than {MAX_ITEMS:,} items; split the file")
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise PromptError(f"{where}: not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise PromptError(f"{where}: not a JSON line ({e.msg})") from None
        items.append(_item(row, where, number))
    if not items:
        raise PromptError(f"{path}: no items (expected one JSON object a line with task, prompt and answer)")
    _check_frequencies(items, path)
    return TaskFile(path, tuple(items), hashlib.sha256(data).hexdigest())


def _item(row: Any, where: str, number: int) -> TaskItem:
    if not isinstance(row, dict):
        raise PromptError(f"{where}: expected an object with task, prompt and answer, got {type(row).__name__}")
    missing = [k for k in ("task", "prompt", "answer") if k not in row]
    if missing:
        raise PromptError(f"{where}: missing {missing} (each line needs task, prompt and answer)")
    for k in ("task", "prompt", "answer"):
        if not isinstance(row[k], str) or not row[k]:
            raise PromptError(f"{where}: {k} must be a non-empty string, got {row[k]!r:.60}")
    task = row["task"]
    if len(task) > MAX_NAME or not task.isprintable() or task.strip() != task or task in RESERVED:
        raise PromptError(f"{where}: task name {task!r:.60} must be 1-{MAX_NAME} printable characters without "
                          f"surrounding spaces, and not {RESERVED}")
    choices = row.get("choices")
    if choices is not None:
        if (not isinstance(choices, list) or len(choices) < 2
                or not all(isinstance(c, str) and c for c in choices) or len(set(choices)) != len(choices)):
            raise PromptError(f"{where}: choices must be a list of at least two distinct non-empty strings, got "
                              f"{choices!r:.80}")
        if row["answer"] not in choices:
            raise PromptError(f"{where}: the answer {row['answer']!r} is not one of the choices {choices!r:.80}")
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise PromptError(f"{where}: split must be one of {SPLITS}, got {split!r:.40}")
    meta = {k: v for k, v in row.items() if k not in ("task", "prompt", "answer", "choices", "split")}
    freq = meta.get("frequency")
    if freq is not None and (not isinstance(freq, (int, float)) or isinstance(freq, bool)
                             or not math.isfinite(freq) or not 0 < freq <= 1):
        raise PromptError(f"{where}: frequency must be a number in (0, 1], got {freq!r:.40}")
    operands = meta.get("operands")
    if operands is not None and (not isinstance(operands, list) or not all(isinstance(o, str) and o
                                                                            for o in operands)):
        raise PromptError(f"{where}: operands must be a list of non-empty strings, got {operands!r:.80}")
    return TaskItem(task, row["prompt"], row["answer"], number, tuple(choices) if choices else None, split, meta)


def _check_frequencies(items: list[TaskItem], path: Path) -> None:
    seen: dict[str, tuple[float, int]] = {}
    for it in items:
        if "frequency" not in it.meta:
            continue
        f = float(it.meta["frequency"])
        first = seen.setdefault(it.task, (f, it.line))
        if first[0] != f:
            raise PromptError(f"{path}:{it.line}: task {it.task!r} has frequency {f}, but {first[0]} on line "
                              f"{first[1]}; a task has one frequency")


@dataclass(frozen=True)
class Encoded:
    """One item's ids: the prompt's (BOS first where the family adds one) and the answer's."""

    prompt: list[int]
    answer: list[int]


def encode_items(items: list[TaskItem], codec: Codec, n_ctx: int, d_vocab: int, path: Path) -> list[Encoded]:
    """Every item's ids, checked against the model: non-empty, inside the vocabulary, and within the context."""
    out = []
    for it in items:
        where = f"{path}:{it.line}"
        prompt = ([codec.bos] if codec.bos is not None else []) + list(codec.encode(it.prompt))
        answer = list(codec.encode(it.answer))
        if len(prompt) == (codec.bos is not None):
            raise PromptError(f"{where}: the prompt {it.prompt!r:.40} encodes to no tokens")
        if not answer:
            raise PromptError(f"{where}: the answer {it.answer!r:.40} encodes to no tokens")
        if len(prompt) + len(answer) > n_ctx:
            raise PromptError(f"{where}: prompt and answer are {len(prompt) + len(answer)} tokens, more than the "
                              f"model's context of {n_ctx}")
        bad = [t for t in prompt + answer if not 0 <= t < d_vocab]
        if bad:
            raise PromptError(f"{where}: token id {bad[0]} lies outside the model's vocabulary [0, {d_vocab})")
        out.append(Encoded(prompt, answer))
    return out


def choice_pairs(items: list[TaskItem], codec: Codec, n_ctx: int, d_vocab: int, path: Path
                 ) -> list[list[tuple[list[int], list[int]]]]:
    """Per item with choices, per choice: (the prompt's ids, BOS first where the family adds one; the choice's ids),
    the prompt cut from the left to fit the context (the end of a prompt is what predicts its answer)."""
    out = []
    bos = [codec.bos] if codec.bos is not None else []
    for it in items:
        where = f"{path}:{it.line}"
        prompt = list(codec.encode(it.prompt))
        if not prompt:
            raise PromptError(f"{where}: the prompt {it.prompt!r:.40} encodes to no tokens")
        pairs = []
        for c in it.choices or ():
            ids = list(codec.encode(c))
            if not ids:
                raise PromptError(f"{where}: choice {c!r:.40} encodes to no tokens")
            room = n_ctx - len(ids) - len(bos)
            if room < 1:
                raise PromptError(f"{where}: choice {c!r:.40} is {len(ids)} tokens, too long for the model's context "
                                  f"of {n_ctx}")
            pairs.append((bos + prompt[-room:], ids))
        bad = [t for a, b in pairs for t in a + b if not 0 <= t < d_vocab]
        if bad:
            raise PromptError(f"{where}: token id {bad[0]} lies outside the model's vocabulary [0, {d_vocab})")
        out.append(pairs)
    return out


def task_prompts(tf: TaskFile, codec: Codec, n_ctx: int, d_vocab: int, split: str = "all") -> PromptSet:
    """The items of ``split`` as a ``PromptSet``: [item, pos] ids right-padded with ``codec.pad``, each item's task,
    and its answer's predictions scored."""
    from interp.prompts.prompt_set import PromptSet

    items = tf.split(split)
    if not items:
        raise PromptError(f"{tf.path}: no items in the {split!r} split")
    encoded = encode_items(items, codec, n_ctx, d_vocab, tf.path)
    width = max(len(e.prompt) + len(e.answer) for e in encoded)
    tokens = np.full((len(items), width), codec.pad, dtype=np.int64)
    scored = np.zeros((len(items), width - 1), dtype=bool)
    for i, e in enumerate(encoded):
        n = len(e.prompt) + len(e.answer)
        tokens[i, :n] = e.prompt + e.answer
        scored[i, len(e.prompt) - 1:n - 1] = True
    names = tf.names
    task_id = np.array([names.index(it.task) for it in items], dtype=np.int64)
    return PromptSet(tokens, task_id, scored, names, codec.special_ids, False)


def operand_tokens(tf: TaskFile, codec: Codec, task: str) -> list[int]:
    """A task's input features as token ids: the first token of each of its ``operands`` metadata strings, or else
    the prompt tokens that vary between its items (those in fewer than half of them: a template's fixed tokens are
    in all)."""
    items = [it for it in tf.items if it.task == task]
    given = [o for it in items for o in it.meta.get("operands") or []]
    if given:
        return sorted({ids[0] for o in dict.fromkeys(given) if (ids := codec.encode(o))})
    counts: dict[int, int] = {}
    for it in items:
        for t in set(codec.encode(it.prompt)):
            counts[t] = counts.get(t, 0) + 1
    return sorted(t for t, c in counts.items() if c < len(items) / 2)


def answer_tokens(tf: TaskFile, codec: Codec, task: str) -> list[int]:
    """The first token of each distinct answer (and choice) of a task: its output features."""
    texts = dict.fromkeys(s for it in tf.items if it.task == task for s in (it.answer, *(it.choices or ())))
    return sorted({ids[0] for s in texts if (ids := codec.encode(s))})
