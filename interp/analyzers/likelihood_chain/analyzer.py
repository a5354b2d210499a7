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
from interp.toys.tasks import LABEL_POS

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
    requires = ("runs whose task mixture has a task with fixed answer choices (lookup, comparison, modular "
                "addition), or a choices_file")
    question = ("How predictable is each downstream metric over training: does the relation to log step degrade "
                "along log p(correct) -> p(correct) -> p among choices -> Brier -> accuracy?")

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

    def select(self, refs: list) -> list:
        if self.config.choices_file is not None:
            return refs
        return [r for r in refs if _choice_tasks(r)]

    def run(self, unit: Unit, ctx) -> Result:
        (ref,) = unit.refs
        model = ctx.model(ref)
        tasks = self._mixture_tasks(ref, ctx, model) if _choice_tasks(ref) else []
        if self.config.choices_file is not None:
            from interp.prompts.choices import score_choices_file

            path = Path(self.config.choices_file)
            logp, answer = score_choices_file(path, ref, model, ctx.settings.prompts.tokenizer, ctx.batch_size)
            # its choices are texts, not tokens (-1); a name the mixture's tasks already use gets a suffix
            name = path.stem if path.stem not in {t.name for t in tasks} else f"{path.stem}-jsonl"
            tasks.append(ChoiceTask(name, logp, answer, np.full(logp.shape[1], -1)))
        return self._result(unit, ref, tasks)

    def _mixture_tasks(self, ref: CheckpointRef, ctx, model) -> list[ChoiceTask]:
        prompts = ctx.prompts(ref)
        choices = _choice_tasks(ref)
        groups = [(name, rows[:self.config.max_prompts or len(rows)]) for name, rows in prompts.groups()
                  if name in choices]
        if not groups:
            return []
        tokens = np.asarray(prompts.tokens[np.concatenate([rows for _, rows in groups])], dtype=np.int64)
        # every task in one pass: on these small models a forward call's fixed cost dominates
        rows = ctx.settings.cache.rows_per_pass(LABEL_POS + 1)
        logp_all = label_logprobs(model, tokens[:, :LABEL_POS + 1], rows)     # [prompt, vocab]
        out, start = [], 0
        for name, rows in groups:
            part = slice(start, start + len(rows))
            start += len(rows)
            cand = choices[name]
            index = {int(t): i for i, t in enumerate(cand)}
            labels = tokens[part, LABEL_POS + 1]
            bad = [int(t) for t in labels if int(t) not in index]
            if bad:
                raise PromptError(f"task {name!r} of run {ref.run!r}: label token {bad[0]} is not one of the "
                                  f"task's choices {cand.tolist()}")
            out.append(ChoiceTask(name, logp_all[part][:, cand], np.array([index[int(t)] for t in labels]), cand))
        return out

    def _result(self, unit: Unit, ref: CheckpointRef, tasks: list[ChoiceTask]) -> Result:
        result = self.new_result(unit)
        s = result.scalars
        k = max((t.logp.shape[1] for t in tasks), default=0)
        top = np.full((len(tasks), k), np.nan)
        mass = np.full((len(tasks), k), np.nan)
        tokens = np.full((len(tasks), k), -1, dtype=np.int64)
        for i, t in enumerate(tasks):
            per = chain_metrics(t.logp, t.answer)
            for m in METRICS + EXTRA:
                s[f"{t.name}/{m}"] = float(per[m].mean())
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
        return result


def _choice_tasks(ref: CheckpointRef) -> dict[str, np.ndarray]:
    """{task: [choice] token ids} of the run's tasks with a fixed answer set (none without a mixture)."""
    spec = ref.mixture_spec
    if spec is None or not spec.tasks:
        return {}
    from interp.toys.tasks import build_tasks

    out = {}
    for name, task in build_tasks(spec).items():
        if task.spec.kind == "modular_addition":
            out[name] = task.operand_tokens
        elif len(task.label_tokens) >= 2:
            out[name] = task.label_tokens
    return out


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
