"""``TaskSet``: the task prompts a checkpoint is evaluated on, and what is known about each task, from either source.

A toy run's task mixture is one source (its tasks' splits; frequencies, operand and label tokens from the mixture);
a user's task file is the other (``interp.prompts.task_file``: items tokenized with the checkpoint's own tokenizer;
frequencies and operands from its metadata). Task analyzers read only a ``TaskSet``, so they run alike on both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interp.prompts.prompt_set import PromptSet
    from interp.prompts.task_file import TaskFile
    from interp.prompts.text import Codec
    from interp.toys.tasks import MixtureSpec


@dataclass(frozen=True)
class TaskSet:
    """``prompts``: the task rows (every ``task_id`` >= 0), label at each row's last prompt token, the answer scored;
    ``frequency``: each task's share of training sequences where known; ``operands`` / ``answers``: each task's input
    and output token ids (its features); ``source``: where the tasks came from, for messages; ``file``: the task file,
    when there is one (its items' choices and metadata)."""

    prompts: PromptSet
    frequency: dict[str, float]
    operands: dict[str, tuple[int, ...]]
    answers: dict[str, tuple[int, ...]]
    source: str
    file: TaskFile | None = field(default=None, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return self.prompts.task_names

    def digest(self) -> str:
        """What results computed from these tasks depend on: the prompts, and the file's bytes (its metadata)."""
        extra = {"frequency": self.frequency, "file": self.file.sha256 if self.file else None}
        return hashlib.sha256(f"{self.prompts.digest()}|{json.dumps(extra, sort_keys=True)}".encode()).hexdigest()[:16]

    def roles(self, rare: str | None = None, common: str | None = None) -> tuple[str | None, str | None]:
        """(rare, common): the tasks named, else the least and most frequent of those with a known frequency; (None,
        None) without two distinct frequencies and no names."""
        for name in (rare, common):
            if name is not None and name not in self.names:
                from interp.errors import ConfigError

                raise ConfigError(f"task {name!r} is not one of the tasks of {self.source}: {list(self.names)}")
        freq = {t: f for t, f in self.frequency.items() if t in self.names}
        if rare is None and len(set(freq.values())) >= 2:
            rare = min(freq, key=freq.get)
        if common is None and len(set(freq.values())) >= 2:
            common = max(freq, key=freq.get)
        if rare is None or common is None or rare == common:
            return None, None
        return rare, common


def mixture_tasks(spec: MixtureSpec, split: str, run: str) -> TaskSet | None:
    """The tasks of a toy run's mixture (None without any): their ``split`` prompts, frequencies and tokens."""
    from interp.prompts.prompt_set import PromptSet
    from interp.toys.tasks import build_tasks, eval_sets

    if spec is None or not spec.tasks:
        return None
    tasks = build_tasks(spec)
    prompts = PromptSet.concat(list(eval_sets(spec, split).values()))
    answers = {n: tuple(int(x) for x in (t.label_tokens if len(t.label_tokens) else t.operand_tokens))
               for n, t in tasks.items()}
    return TaskSet(prompts, {t.name: t.frequency for t in spec.tasks},
                   {n: tuple(int(x) for x in t.operand_tokens) for n, t in tasks.items()}, answers,
                   f"the task mixture of run {run!r}")


def fixed_tasks(prompts: PromptSet) -> TaskSet | None:
    """The task rows of a prompt set given directly (tests, planted models): nothing known beyond the rows."""
    rows = prompts.task_id >= 0
    if not rows.any():
        return None
    return TaskSet(prompts.subset(rows), {}, {}, {}, "the fixed prompts")


def file_tasks(tf: TaskFile, codec: Codec, n_ctx: int, d_vocab: int, split: str) -> TaskSet:
    """The tasks of a task file, tokenized with ``codec`` for a model of context ``n_ctx`` and ``d_vocab`` tokens."""
    from interp.prompts.task_file import answer_tokens, operand_tokens, task_prompts

    prompts = task_prompts(tf, codec, n_ctx, d_vocab, split)
    return TaskSet(prompts, tf.frequency,
                   {t: tuple(operand_tokens(tf, codec, t)) for t in tf.names},
                   {t: tuple(answer_tokens(tf, codec, t)) for t in tf.names}, f"task file {tf.path}", tf)
