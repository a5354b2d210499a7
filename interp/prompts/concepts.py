"""Cyclic concepts as data: a JSONL concepts file, one labelled prompt a line, for the circles a model may use.

    {"concept": "weekday", "prompt": "See you on Friday", "value": 4, "period": 7}
    {"concept": "month", "prompt": "It snowed in March and", "value": 2, "period": 12, "at": "March"}

``concept`` (a name), ``prompt`` (text), ``value`` (an integer in [0, period)) and ``period`` (an integer >= 3, the
same on every line of a concept) are required. The activation is taken at the prompt's last token, or, with ``at``,
at the last token of the first occurrence of that text in the prompt (the prompt is tokenized in two pieces, up to
the end of ``at`` and after it, so the position is exact). Each concept needs at least three distinct values (a
circle through fewer points is not a circle). Every line is validated before anything runs, and each error names
the file and line; at most ``MAX_ITEMS`` lines.

A concept's circle is found from the labels (Engels et al., arXiv 2405.14860, found days and months on circles in
GPT-2 and Mistral this way): the plane in which the activations best follow (cos, sin) of 2 pi value / period.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.errors import ConfigError, PromptError

if TYPE_CHECKING:
    from interp.prompts.prompt_set import PromptSet
    from interp.prompts.text import Codec

MAX_FILE_BYTES = 64 << 20
MAX_ITEMS = 200_000


@dataclass(frozen=True)
class ConceptItem:
    concept: str
    prompt: str
    value: int
    period: int
    line: int
    at: str | None = None


@dataclass(frozen=True)
class ConceptFile:
    path: Path
    items: tuple[ConceptItem, ...]
    sha256: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(it.concept for it in self.items))

    def period(self, concept: str) -> int:
        return next(it.period for it in self.items if it.concept == concept)


@dataclass(frozen=True)
class ConceptSet:
    """Labelled prompts of cyclic concepts for one checkpoint: ``prompts`` (right-padded rows, ``task_id`` = concept
    index), ``position`` [row] where to read the activation, ``value`` and ``period`` [row]. From a concepts file, or
    from a toy run's modular-addition task (its answer (a + b) mod p on its prompts, read at the label position);
    ``operands`` [concept, value] the token of each value where a value is one token (the modular task's operands,
    ordered by rank), for spectra of the embedding."""

    prompts: PromptSet
    position: np.ndarray
    value: np.ndarray
    period: np.ndarray
    file: ConceptFile | None = None
    source: str = ""
    operands: dict[str, np.ndarray] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.prompts.task_names

    def rows(self, concept: str) -> np.ndarray:
        return np.flatnonzero(self.prompts.task_id == self.names.index(concept))

    def theta(self, rows: np.ndarray) -> np.ndarray:
        """[row] the angle 2 pi value / period of each row."""
        return 2 * np.pi * self.value[rows] / self.period[rows]

    def digest(self) -> str:
        file = self.file.sha256 if self.file is not None else self.source
        return hashlib.sha256(f"{self.prompts.digest()}|{file}".encode()).hexdigest()[:16]


_MEMO: dict[tuple, ConceptFile] = {}


def read_concepts(path: Path) -> ConceptFile:
    """The validated concepts file at ``path``, read once per version of the file."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        raise ConfigError(f"concepts file {path} does not exist (--concepts)") from None
    if not path.is_file():
        raise ConfigError(f"concepts file {path} is not a regular file (--concepts)")
    if st.st_size > MAX_FILE_BYTES:
        raise PromptError(f"{path}: {st.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} a concepts file may hold")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _MEMO:
        _MEMO[key] = _read(path)
    return _MEMO[key]


def _read(path: Path) -> ConceptFile:
    data = path.read_bytes()
    items: list[ConceptItem] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        if len(items) == MAX_ITEMS:
            raise PromptError(f"{where}: more than {MAX_ITEMS:,} lines; a circle needs far fewer points")
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise PromptError(f"{where}: not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise PromptError(f"{where}: not a JSON line ({e.msg})") from None
        items.append(_item(row, where, number))
    if not items:
        raise PromptError(f"{path}: no items (expected one JSON object a line with concept, prompt, value, period)")
    _check_concepts(items, path)
    return ConceptFile(path, tuple(items), hashlib.sha256(data).hexdigest())


def _item(row: Any, where: str, number: int) -> ConceptItem:
    if not isinstance(row, dict):
        raise PromptError(f"{where}: expected an object with concept, prompt, value and period")
    missing = [k for k in ("concept", "prompt", "value", "period") if k not in row]
    if missing:
        raise PromptError(f"{where}: missing {missing} (each line needs concept, prompt, value and period)")
    for k in ("concept", "prompt"):
        if not isinstance(row[k], str) or not row[k].strip():
            raise PromptError(f"{where}: {k} must be a non-empty string, got {row[k]!r:.60}")
    period, value = row["period"], row["value"]
    if not isinstance(period, int) or isinstance(period, bool) or period < 3:
        raise PromptError(f"{where}: period must be an integer >= 3 (the points of a circle), got {period!r:.40}")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < period:
        raise PromptError(f"{where}: value must be an integer in [0, {period}) for period {period}, got "
                          f"{value!r:.40}")
    at = row.get("at")
    if at is not None and (not isinstance(at, str) or not at or at not in row["prompt"]):
        raise PromptError(f"{where}: at must be a non-empty piece of the prompt, got {at!r:.40}")
    return ConceptItem(row["concept"], row["prompt"], value, period, number, at)


def _check_concepts(items: list[ConceptItem], path: Path) -> None:
    first: dict[str, ConceptItem] = {}
    values: dict[str, set[int]] = {}
    for it in items:
        f = first.setdefault(it.concept, it)
        if f.period != it.period:
            raise PromptError(f"{path}:{it.line}: concept {it.concept!r} has period {it.period}, but {f.period} on "
                              f"line {f.line}; a concept has one period")
        values.setdefault(it.concept, set()).add(it.value)
    for name, vals in values.items():
        if len(vals) < 3:
            raise PromptError(f"{path}:{first[name].line}: concept {name!r} has {len(vals)} distinct values; a circle "
                              f"needs at least 3")


def concept_prompts(cf: ConceptFile, codec: Codec, n_ctx: int, d_vocab: int) -> ConceptSet:
    """Every line tokenized (BOS first where the family puts one), with the position its activation is read at."""
    from interp.prompts.prompt_set import PromptSet

    rows, positions = [], []
    for it in cf.items:
        where = f"{cf.path}:{it.line}"
        cut = it.prompt.index(it.at) + len(it.at) if it.at else len(it.prompt)
        head = ([codec.bos] if codec.bos is not None else []) + list(codec.encode(it.prompt[:cut]))
        ids = head + list(codec.encode(it.prompt[cut:]))
        if len(head) == (codec.bos is not None):
            raise PromptError(f"{where}: the prompt encodes to no tokens")
        if len(ids) > n_ctx:
            raise PromptError(f"{where}: the prompt is {len(ids)} tokens, more than the model's context of {n_ctx}")
        bad = [t for t in ids if not 0 <= t < d_vocab]
        if bad:
            raise PromptError(f"{where}: token id {bad[0]} lies outside the model's vocabulary [0, {d_vocab})")
        rows.append(ids)
        positions.append(len(head) - 1)
    width = max(len(r) for r in rows)
    tokens = np.full((len(rows), width), codec.pad, dtype=np.int64)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = r
    names = cf.names
    task_id = np.array([names.index(it.concept) for it in cf.items], dtype=np.int64)
    prompts = PromptSet(tokens, task_id, np.zeros((len(rows), width - 1), dtype=bool), names,
                        codec.special_ids, False)
    return ConceptSet(prompts, np.array(positions), np.array([it.value for it in cf.items]),
                      np.array([it.period for it in cf.items]), cf, f"concepts file {cf.path}")


def mixture_concepts(spec: Any, run: str) -> ConceptSet | None:
    """The modular-addition task of a toy mixture as a concept (None without one): its test prompts, the answer
    c = (rank(a) + rank(b)) mod p as the value, period p, read at the label position."""
    from interp.toys.tasks import LABEL_POS, build_tasks, find_task

    found = find_task(spec, "modular_addition")
    if found is None:
        return None
    task = build_tasks(spec)[found.name]
    prompts = task.prompt_set("test", (found.name,))
    prompts = type(prompts)(prompts.tokens, np.zeros(len(prompts), dtype=np.int64), prompts.loss_mask, (found.name,))
    rank = {int(tok): i for i, tok in enumerate(task.operand_tokens)}
    p = len(task.operand_tokens)
    value = np.array([(rank[int(a)] + rank[int(b)]) % p for a, b in prompts.tokens[:, :2]])
    return ConceptSet(prompts, np.full(len(prompts), LABEL_POS), value, np.full(len(prompts), p), None,
                      f"the modular-addition task of run {run!r}", {found.name: np.asarray(task.operand_tokens)})
