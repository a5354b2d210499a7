"""``likelihood-chain``: downstream metrics computed from likelihoods, and how predictable each is over training
(Schaeffer et al., *Why has predicting downstream capabilities of frontier AI models with scale remained
elusive?*, arXiv 2406.04391).

The method, the choices that are ours and the caveats: ``method.md`` beside this module.

The series-level correlations with log step (and with log width across runs) are in ``summary.py`` beside
this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from interp.analyzers.base import Analyzer, Unit
from interp.config import Options, option
from interp.errors import PromptError
from interp.results import Result
from interp.runner.context import Needs

if TYPE_CHECKING:
    from interp.checkpoints.manifest import CheckpointRef

METRICS = ("log_p_correct", "p_correct", "p_choice", "brier", "accuracy")
EXTRA = ("wrong_max",)


@dataclass(frozen=True)
class LikelihoodChainConfig(Options):
    choices_file: Path | None = None    # a JSONL of {"prompt", "choices", "answer"} (needs the model's tokenizer)
    # the x of the correlations with training: log10(step) leaving step 0 out, or log10(step + 1) keeping it
    step_zero: Literal["exclude", "plus_one"] = "exclude"
    max_prompts: int = option(0, ge=0)   # per task, the first N evaluation prompts; 0: all


def chain_metrics(logp: np.ndarray, answer: np.ndarray) -> dict[str, np.ndarray]:
    """Per-prompt metrics from the log-probs of each choice.

    ``logp``: [prompt, choice] log-probabilities over the vocabulary (for a choice of several tokens, the sum of its
    tokens' log-probs; -inf for a choice a prompt does not have); ``answer``: [prompt] index of the correct choice.
    Returns [prompt] arrays (float64) named as ``METRICS`` plus ``wrong_max`` and ``wrong_arg`` (the strongest wrong
    choice's index)."""
    logp = np.asarray(logp, dtype=np.float64)
    answer = np.asarray(answer, dtype=np.int64)
    if logp.ndim != 2 or logp.shape[1] < 2 or answer.shape != (logp.shape[0],):
        raise ValueError(f"expected logp [prompt, choice >= 2] and answer [prompt], got {logp.shape}, {answer.shape}")
    rows = np.arange(len(answer))
    # renormalising in log space: a choice set whose every member is improbable stays finite
    shifted = logp - logp.max(1, keepdims=True)
    q = np.exp(shifted)
    q /= q.sum(1, keepdims=True)
    onehot = np.zeros_like(q)
    onehot[rows, answer] = 1.0
    wrong = np.where((onehot > 0) | ~np.isfinite(logp), -np.inf, q)   # -inf logp: a choice this prompt lacks
    return {"log_p_correct": logp[rows, answer], "p_correct": np.exp(logp[rows, answer]),
            "p_choice": q[rows, answer], "brier": ((q - onehot) ** 2).sum(1),
            "accuracy": (logp.argmax(1) == answer).astype(np.float64),
            "wrong_max": wrong.max(1), "wrong_arg": wrong.argmax(1)}


def wrong_choice_profile(per_prompt: dict[str, np.ndarray], logp: np.ndarray, answer: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """([choice] fraction of prompts whose strongest wrong choice is c, [choice] mean renormalised mass on c over
    the prompts that have c and whose answer is not c; NaN where there are none)."""
    k = logp.shape[1]
    top = np.bincount(per_prompt["wrong_arg"], minlength=k) / max(1, len(answer))
    q = np.exp(logp - logp.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    # [prompt, choice]: c is a wrong choice the prompt has (items of a choices file may have fewer choices: -inf)
    wrong = (np.arange(k)[None, :] != answer[:, None]) & np.isfinite(logp)
    n = wrong.sum(0)
    mass = np.where(n > 0, (q * wrong).sum(0) / np.maximum(n, 1), np.nan)
    return top, mass


@dataclass
class ChoiceTask:
    """One task's scoring input: [prompt, choice] log-probs, [prompt] answer index, [choice] token ids (-1 where a
    choice has several tokens)."""

    name: str
    logp: np.ndarray
    answer: np.ndarray
    choice_tokens: np.ndarray


class LikelihoodChain(Analyzer):
    name = "likelihood-chain"
    Config = LikelihoodChainConfig
    version = 2   # tasks from any source; per-prompt metrics saved
    inputs = ("tasks",)
    requires = ("tasks with fixed answer choices: a run whose task mixture has one (lookup, comparison, modular "
                "addition), a task file whose items have choices (--tasks), or a choices_file")
    question = ("How predictable is each downstream metric over training: does the relation to log step degrade "
                "along log p(correct) -> p(correct) -> p among choices -> Brier -> accuracy?")

    def __init__(self, config: Options | None = None):
        super().__init__(config)
        if self.config.choices_file is not None:   # its own items: no task input needed
            self.inputs = ()
            self.extra_inputs = ("tasks",)

    def input_digests(self) -> dict[str, str]:
        """The choices file's sha256, hashed once per version of the file (not once per checkpoint of a long
        series): memoised on its size and modification time, so an edit still rehashes."""
        from interp.checkpoints.manifest import file_sha256

        path = self.config.choices_file
        if path is None or not Path(path).is_file():
            return {}
        st = Path(path).stat()
        memo = self.__dict__.setdefault("_digests", {})
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in memo:
            memo[key] = file_sha256(Path(path))
        return {"choices_file": memo[key]}

    def needs(self, ref) -> Needs:
        return Needs()

    def run(self, unit: Unit, ctx) -> Result:
        (ref,) = unit.refs
        model = ctx.model(ref)
        tasks = ctx.tasks(ref) if "tasks" in ctx.available(ref) else None
        scored = []
        if tasks is not None:
            scored = (self._file_tasks(ref, tasks, ctx, model) if tasks.file is not None
                      else self._label_tasks(tasks, ctx, model))
        if self.config.choices_file is not None:
            from interp.prompts.choices import score_choices_file

            path = Path(self.config.choices_file)
            logp, answer = score_choices_file(path, ref, model, ctx.source(ref).tokenizer, ctx.batch_size)
            # its choices are texts, not tokens (-1); a name the tasks already use gets a suffix
            name = path.stem if path.stem not in {t.name for t in scored} else f"{path.stem}-jsonl"
            scored.append(ChoiceTask(name, logp, answer, np.full(logp.shape[1], -1)))
        return self._result(unit, ref, scored)

    def _label_tasks(self, tasks, ctx, model) -> list[ChoiceTask]:
        """Tasks whose choices are single tokens (a toy mixture's: its label tokens, or the operands of modular
        addition), all scored from the logits at each prompt's label position in one pass per prompt length."""
        prompts = tasks.prompts
        choices = {n: np.asarray(c) for n, c in tasks.answers.items() if len(c) >= 2}
        label = prompts.label_positions()
        out = []
        for name, rows in prompts.groups():
            if name not in choices:
                continue
            rows = rows[:self.config.max_prompts or len(rows)]
            pos = int(label[rows[0]])
            if (label[rows] != pos).any():
                raise PromptError(f"task {name!r} of {tasks.source}: its prompts have different label positions")
            tokens = np.asarray(prompts.tokens[rows], dtype=np.int64)
            logp = label_logprobs(model, tokens[:, :pos + 1], ctx.settings.cache.rows_per_pass(pos + 1))
            cand = choices[name]
            index = {int(t): i for i, t in enumerate(cand)}
            labels = tokens[:, pos + 1]
            bad = [int(t) for t in labels if int(t) not in index]
            if bad:
                raise PromptError(f"task {name!r} of {tasks.source}: label token {bad[0]} is not one of the task's "
                                  f"choices {cand.tolist()}")
            out.append(ChoiceTask(name, logp[:, cand], np.array([index[int(t)] for t in labels]), cand))
        return out

    def _file_tasks(self, ref, tasks, ctx, model) -> list[ChoiceTask]:
        """A task file's items that have choices: each choice's text scored as a continuation of the prompt (the sum
        of its tokens' log-probs), per task; the test split (every item, when the file has no splits)."""
        from interp.prompts.choices import sequence_logprobs
        from interp.prompts.task_file import choice_pairs

        n_ctx, d_vocab = int(model.cfg.n_ctx), int(model.cfg.d_vocab_out)
        items = [it for it in tasks.file.split("test") if it.choices]
        out = []
        for name in tasks.names:
            mine = [it for it in items if it.task == name][:self.config.max_prompts or None]
            if not mine:
                continue
            pairs = choice_pairs(mine, ctx.codec(ref), n_ctx, d_vocab, tasks.file.path)
            k = max(len(it.choices) for it in mine)
            scores = sequence_logprobs(model, [q for ps in pairs for q in ps], ctx.batch_size)
            logp, start = np.full((len(mine), k), -np.inf), 0
            for i, ps in enumerate(pairs):
                logp[i, :len(ps)] = scores[start:start + len(ps)]
                start += len(ps)
            answer = np.array([it.choices.index(it.answer) for it in mine])
            out.append(ChoiceTask(name, logp, answer, np.full(k, -1)))
        return out

    def _result(self, unit: Unit, ref: CheckpointRef, tasks: list[ChoiceTask]) -> Result:
        result = self.new_result(unit)
        s = result.scalars
        k = max((t.logp.shape[1] for t in tasks), default=0)
        top = np.full((len(tasks), k), np.nan)
        mass = np.full((len(tasks), k), np.nan)
        tokens = np.full((len(tasks), k), -1, dtype=np.int64)
        per_prompt: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
        for i, t in enumerate(tasks):
            per = chain_metrics(t.logp, t.answer)
            for m in METRICS + EXTRA:
                s[f"{t.name}/{m}"] = float(per[m].mean())
            for m in METRICS:
                per_prompt[m].append(per[m])
            n = t.logp.shape[1]
            top[i, :n], mass[i, :n] = wrong_choice_profile(per, t.logp, t.answer)
            tokens[i, :n] = t.choice_tokens
            j = int(np.argmax(top[i, :n]))
            s[f"{t.name}/wrong_top_choice"] = j
            s[f"{t.name}/wrong_top_share"] = float(top[i, j])
            s[f"{t.name}/n_prompts"] = int(len(t.answer))
            s[f"{t.name}/n_choices"] = int(n)
        s["tasks"] = [t.name for t in tasks]
        s["width"] = run_width(ref)
        s["group"] = ref.group or ""
        result.add("wrong_top_share", top, ("task", "choice"))
        result.add("wrong_mass", mass, ("task", "choice"))
        result.add("choice_tokens", tokens, ("task", "choice"))
        # every prompt's own metrics (the same prompts at every step): the per-sample view of the chain
        result.add("prompt_task", np.concatenate([np.full(len(t.answer), i) for i, t in enumerate(tasks)])
                   if tasks else np.zeros(0, dtype=int), ("prompt",))
        for m in METRICS:
            result.add(f"prompt_{m}", np.concatenate(per_prompt[m]) if tasks else np.zeros(0), ("prompt",))
        return result


def run_width(ref: CheckpointRef) -> float | None:
    """The run's width: the manifest's ``labels.width`` or ``labels.d_mlp``, else the model's d_mlp."""
    for v in (ref.labels.get("width"), ref.labels.get("d_mlp"), ref.model.get("d_mlp")):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def label_logprobs(model, tokens: np.ndarray, batch_size: int) -> np.ndarray:
    """[prompt, vocab] float64 log-probs of the next token after ``tokens`` [prompt, pos] (the log-softmax over the
    whole vocabulary is taken in float64; task mixtures have small vocabularies)."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for s in range(0, len(tokens), batch_size):
            logits = model(torch.as_tensor(tokens[s:s + batch_size], device=device))[:, -1]
            out.append(torch.log_softmax(logits.double(), -1).cpu().numpy())
    return np.concatenate(out)
