"""Task families, a background language, and the training mixture they are injected into.

Every task prompt is three tokens ``TOK1 TOK2 LABEL``; the model is scored on predicting LABEL from the logits at
position 1 (``LABEL_POS``). Operand tokens are drawn at random from the vocabulary's task region, so a task is novel
to the model and its tokens say which task a prompt belongs to (arXiv 2605.29548, section 3).

Families:
- ``comparison``: every operand token has a hidden random rank; LABEL is YES if rank(TOK1) > rank(TOK2), else NO.
- ``modular_addition``: LABEL is the operand token whose rank is (rank(TOK1) + rank(TOK2)) mod p.
- ``lookup``: a fixed random table (TOK1, TOK2) -> LABEL over ``n_labels`` label tokens, the memorization protocol:
  its capacity demand grows with the number of facts (n_operands ** 2). It has no held-out split: every fact is
  both trained on and evaluated (``split`` returns all facts for both), because a random table cannot generalise.

Background sequences come from a fixed random bigram (Markov) language over the background tokens and are scored on
every position. Batches are a pure function of (seed, step), so training resumes exactly from any step.

Only numpy is used here: ``import interp.tasks`` stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from interp.errors import ConfigError
from interp.prompts.prompt_set import PromptSet

N_CTX = 3
LABEL_POS = 1  # logits at this position predict the LABEL token at position 2
TaskKind = Literal["lookup", "comparison", "modular_addition"]
KINDS: tuple[str, ...] = ("lookup", "comparison", "modular_addition")


@dataclass(frozen=True)
class TaskSpec:
    """One task family instance. ``frequency`` is its share of training sequences; ``injection_gap`` N > 1 means
    matched-frequency injection: absent for N - 1 batches, then N batches' worth at once."""

    name: str
    kind: TaskKind
    n_operands: int = 16
    n_labels: int = 8
    frequency: float = 0.0
    train_fraction: float = 0.5
    injection_gap: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"task {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.n_operands < 2:
            raise ConfigError(f"task {self.name!r}: n_operands must be >= 2, got {self.n_operands}")
        if not 0.0 <= self.frequency <= 1.0:
            raise ConfigError(f"task {self.name!r}: frequency must lie in [0, 1], got {self.frequency}")
        if not 0.0 < self.train_fraction < 1.0:
            raise ConfigError(f"task {self.name!r}: train_fraction must lie in (0, 1), got {self.train_fraction}")
        if self.injection_gap < 1:
            raise ConfigError(f"task {self.name!r}: injection_gap must be >= 1, got {self.injection_gap}")

    @property
    def n_label_tokens(self) -> int:
        return {"lookup": self.n_labels, "comparison": 2, "modular_addition": 0}[self.kind]


@dataclass(frozen=True)
class MixtureSpec:
    """The whole training distribution: vocabulary layout, background language and tasks."""

    d_vocab: int
    n_background: int
    tasks: tuple[TaskSpec, ...] = ()
    background_seed: int = 0
    background_concentration: float = 0.3  # Dirichlet alpha of bigram rows: smaller = more predictable language

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in self.tasks))
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"task names must be unique, got {names}")
        need = self.n_background + sum(t.n_operands + t.n_label_tokens for t in self.tasks)
        if need > self.d_vocab:
            raise ConfigError(f"d_vocab {self.d_vocab} is too small: background and task tokens need {need}")
        total = sum(t.frequency for t in self.tasks)
        if total > 1.0 + 1e-9:
            raise ConfigError(f"task frequencies sum to {total:.4f} > 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(d["tasks"])   # the YAML/JSON round trip gives lists; equal dicts must compare equal
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MixtureSpec:
        return cls(**{**d, "tasks": tuple(TaskSpec(**t) for t in d.get("tasks", ()))})

    def task(self, name: str) -> Task:
        return build_tasks(self)[name]


def _label_only_mask(n: int) -> np.ndarray:
    mask = np.zeros((n, N_CTX - 1), dtype=bool)
    mask[:, LABEL_POS] = True
    return mask


class Task:
    """A task instance: its tokens and all of its prompts, split reproducibly into train and test."""

    def __init__(self, spec: TaskSpec, operand_tokens: np.ndarray, label_tokens: np.ndarray, index: int):
        self.spec, self.index = spec, index
        self.operand_tokens = operand_tokens  # [n_operands], ordered by hidden rank
        self.label_tokens = label_tokens
        rng = np.random.default_rng([spec.seed, 7])
        n = spec.n_operands
        a, b = (g.ravel() for g in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
        if spec.kind == "comparison":
            keep = a != b
            a, b = a[keep], b[keep]
            labels = np.where(a > b, label_tokens[0], label_tokens[1])
        elif spec.kind == "modular_addition":
            labels = operand_tokens[(a + b) % n]
        else:
            labels = label_tokens[rng.integers(0, spec.n_labels, size=a.size)]
        self.all_prompts = np.stack([operand_tokens[a], operand_tokens[b], labels], axis=1).astype(np.int64)
        order = rng.permutation(len(self.all_prompts))
        if spec.kind == "lookup":
            self._train = self._test = np.sort(order)
        else:
            n_train = int(round(spec.train_fraction * len(order)))
            self._train, self._test = np.sort(order[:n_train]), np.sort(order[n_train:])

    @property
    def name(self) -> str:
        return self.spec.name

    def split(self, which: Literal["train", "test", "all"]) -> np.ndarray:
        """Token rows [prompt, 3] of one split."""
        if which == "all":
            return self.all_prompts
        if which not in ("train", "test"):
            raise ConfigError(f"split must be 'train', 'test' or 'all', got {which!r}")
        return self.all_prompts[self._train if which == "train" else self._test]

    def prompt_set(self, which: Literal["train", "test", "all"], task_names: tuple[str, ...]) -> PromptSet:
        rows = self.split(which)
        return PromptSet(rows, np.full(len(rows), self.index, dtype=np.int64), _label_only_mask(len(rows)), task_names)


def find_task(spec: MixtureSpec | None, kind: str) -> TaskSpec | None:
    """The mixture's first task of ``kind`` (None without one, or without a mixture)."""
    return next((t for t in spec.tasks if t.kind == kind), None) if spec is not None else None


def build_tasks(spec: MixtureSpec) -> dict[str, Task]:
    """Assign each task disjoint random tokens from the task region (ids >= n_background), in spec order."""
    rng = np.random.default_rng([spec.background_seed, 11])
    free = rng.permutation(np.arange(spec.n_background, spec.d_vocab))
    tasks, cursor = {}, 0
    for i, t in enumerate(spec.tasks):
        ops = free[cursor: cursor + t.n_operands]
        labels = free[cursor + t.n_operands: cursor + t.n_operands + t.n_label_tokens]
        cursor += t.n_operands + t.n_label_tokens
        tasks[t.name] = Task(t, ops.astype(np.int64), labels.astype(np.int64), i)
    return tasks


class BackgroundLanguage:
    """A fixed random bigram language over tokens [0, n_background)."""

    def __init__(self, n_background: int, seed: int, concentration: float):
        rng = np.random.default_rng([seed, 3])
        self.n = n_background
        self.transition = rng.dirichlet(np.full(n_background, concentration), size=n_background)  # [from, to]
        self._cdf = np.cumsum(self.transition, axis=1)

    def sample(self, n_seq: int, rng: np.random.Generator) -> np.ndarray:
        seq = np.empty((n_seq, N_CTX), dtype=np.int64)
        seq[:, 0] = rng.integers(0, self.n, size=n_seq)
        for pos in range(1, N_CTX):
            u = rng.random(n_seq)[:, None]
            seq[:, pos] = np.minimum((u > self._cdf[seq[:, pos - 1]]).sum(axis=1), self.n - 1)
        return seq


def injection_count(freq: float, batch_size: int, step: int, gap: int) -> int:
    """How many instances of a task go into batch ``step``: exact long-run frequency, all of a gap's instances at its
    last batch (matched-frequency injection; gap 1 spreads them evenly)."""
    if (step + 1) % gap:
        return 0
    per = freq * batch_size
    return int(np.floor(per * (step + 1)) - np.floor(per * (step + 1 - gap)))


class MixtureStream:
    """Training batches as a pure function of (seed, step). An injected burst may make a batch larger than
    ``batch_size`` (it comes on top of the background share, as in the paper's protocol)."""

    def __init__(self, spec: MixtureSpec, batch_size: int, seed: int):
        self.spec, self.batch_size, self.seed = spec, batch_size, seed
        self.tasks = build_tasks(spec)
        self.task_names = tuple(self.tasks)
        self.background = (BackgroundLanguage(spec.n_background, spec.background_seed, spec.background_concentration)
                           if spec.n_background else None)
        self._train = {n: t.split("train") for n, t in self.tasks.items()}

    def batch(self, step: int) -> PromptSet:
        rng = np.random.default_rng([self.seed, step, 5])
        parts: list[PromptSet] = []
        n_task = 0
        for name, task in self.tasks.items():
            t = task.spec
            k = injection_count(t.frequency, self.batch_size, step, t.injection_gap)
            if k:
                rows = self._train[name][rng.integers(0, len(self._train[name]), size=k)]
                parts.append(PromptSet(rows, np.full(k, task.index), _label_only_mask(k), self.task_names))
            n_task += int(round(t.frequency * self.batch_size))
        n_bg = self.batch_size - n_task
        if n_bg > 0 and self.background is not None:
            parts.append(PromptSet(self.background.sample(n_bg, rng), np.full(n_bg, -1),
                                   np.ones((n_bg, N_CTX - 1), dtype=bool), self.task_names))
        return PromptSet.concat(parts)

    def full_train_set(self) -> PromptSet:
        """Every task's train split once (for full-batch training without background)."""
        return PromptSet.concat([t.prompt_set("train", self.task_names) for t in self.tasks.values()])


def eval_sets(spec: MixtureSpec, which: Literal["train", "test", "all"] = "test") -> dict[str, PromptSet]:
    tasks = build_tasks(spec)
    names = tuple(tasks)
    return {n: t.prompt_set(which, names) for n, t in tasks.items()}
