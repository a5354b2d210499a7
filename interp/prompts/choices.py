"""A user's multiple-choice items, scored with a checkpoint's own tokenizer: a JSONL file with one object a line,
``{"prompt": "The capital of France is", "choices": [" Paris", " Rome"], "answer": 0}``.

Every line is validated before anything runs (a JSON object; ``prompt`` a string; ``choices`` a list of at least
two distinct non-empty strings; ``answer`` an integer index into them), and each error names the file and line.

Ours: prompt and choice are tokenized separately and their ids concatenated (so a choice carries its own leading
space, as in the example), not tokenized together as some harnesses do; a choice of several tokens scores the sum of
its tokens' log-probs (the log-probability of the whole continuation). A sequence longer than the model's context
keeps the prompt's last tokens. Items may have different numbers of choices: the missing ones score -inf (zero
mass). Blank lines are skipped; keys other than these three are ignored.

A unit's key names the file by its path (the analyzer's option), not its content: after editing the file, analyse
into a fresh ``--out`` (or rename the file), or the results of the old content are reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from interp.errors import ConfigError, PromptError

if TYPE_CHECKING:
    from interp.checkpoints.manifest import CheckpointRef

LOGIT_BUDGET = 1 << 25   # logits held per forward pass (floats): rows are cut to fit


@dataclass(frozen=True)
class Item:
    prompt: str
    choices: tuple[str, ...]
    answer: int
    line: int


def read_items(path: Path) -> list[Item]:
    """The validated items of a choices JSONL."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"choices file {path} does not exist (likelihood-chain option choices_file)")
    items = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = list(enumerate(f, 1))
        except UnicodeDecodeError as e:
            raise PromptError(f"{path}: not UTF-8 text ({e})") from None
    for i, line in lines:
        if line.strip():
            items.append(_item(line, f"{path}:{i}", i))
    if not items:
        raise PromptError(f"{path}: no items (expected one JSON object a line with prompt, choices and answer)")
    return items


def _item(line: str, where: str, number: int) -> Item:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise PromptError(f"{where}: not a JSON line ({e})") from None
    if not isinstance(row, dict):
        raise PromptError(f"{where}: expected an object with prompt, choices and answer, got {type(row).__name__}")
    missing = [k for k in ("prompt", "choices", "answer") if k not in row]
    if missing:
        raise PromptError(f"{where}: missing {missing} (each line needs prompt, choices and answer)")
    prompt, choices, answer = row["prompt"], row["choices"], row["answer"]
    if not isinstance(prompt, str):
        raise PromptError(f"{where}: prompt must be a string, got {type(prompt).__name__}")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise PromptError(f"{where}: choices must be a list of at least two non-empty strings, got {choices!r:.80}")
    if len(set(choices)) != len(choices):
        raise PromptError(f"{where}: choices repeat a string ({choices!r:.80}); each must be distinct")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise PromptError(f"{where}: answer must be an integer index in [0, {len(choices) - 1}] into choices, "
                          f"got {answer!r}")
    return Item(prompt, tuple(choices), answer, number)


def encode_items(items: list[Item], encode, n_ctx: int, d_vocab: int, path: Path
                 ) -> list[list[tuple[list[int], list[int]]]]:
    """Per item, per choice: (context ids, choice ids), the context cut from the left to fit ``n_ctx``."""
    out = []
    for item in items:
        where = f"{path}:{item.line}"
        ctx = list(encode(item.prompt))
        if not ctx:
            raise PromptError(f"{where}: the prompt encodes to no tokens; a choice needs a context to be predicted "
                              f"from")
        pairs = []
        for c in item.choices:
            ids = list(encode(c))
            if not ids:
                raise PromptError(f"{where}: choice {c!r} encodes to no tokens")
            if len(ids) >= n_ctx:
                raise PromptError(f"{where}: choice {c!r:.40} is {len(ids)} tokens, not shorter than the model's "
                                  f"context of {n_ctx}")
            pairs.append((ctx[-(n_ctx - len(ids)):], ids))
        bad = [t for c, ids in pairs for t in c + ids if not 0 <= t < d_vocab]
        if bad:
            raise PromptError(f"{where}: token id {bad[0]} lies outside the model's vocabulary [0, {d_vocab})")
        out.append(pairs)
    return out


def score_choices_file(path: Path, ref: CheckpointRef, model, tokenizer: Path | None, batch_size: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """([item, choice] summed log-probs, [item] answer index) of a choices JSONL on ``model``; a choice an item
    does not have scores -inf."""
    from interp.prompts.text import encoder, find_tokenizer

    items = read_items(path)
    encode = encoder(find_tokenizer(ref.path, ref.format, tokenizer))
    cfg = model.cfg
    pairs = encode_items(items, encode, int(cfg.n_ctx), int(cfg.d_vocab_out), Path(path))
    flat = [p for ps in pairs for p in ps]
    scores = sequence_logprobs(model, flat, batch_size)
    k = max(len(it.choices) for it in items)
    logp = np.full((len(items), k), -np.inf)
    start = 0
    for i, ps in enumerate(pairs):
        logp[i, :len(ps)] = scores[start:start + len(ps)]
        start += len(ps)
    return logp, np.array([it.answer for it in items], dtype=np.int64)


def sequence_logprobs(model, pairs: list[tuple[list[int], list[int]]], batch_size: int) -> np.ndarray:
    """[pair] sum over a continuation's tokens of log p(token | everything before it), for (context, continuation)
    id lists. Sequences are right-padded (causal attention: padding after a token never changes its logits)."""
    import torch

    device = next(model.parameters()).device
    vocab = int(model.cfg.d_vocab_out)
    out = np.zeros(len(pairs))
    longest = max(len(c) + len(x) for c, x in pairs)
    rows = max(1, min(batch_size, LOGIT_BUDGET // (longest * vocab)))
    with torch.inference_mode():
        for s in range(0, len(pairs), rows):
            part = pairs[s:s + rows]
            n = max(len(c) + len(x) for c, x in part)
            toks = torch.zeros(len(part), n, dtype=torch.long)
            scored = torch.zeros(len(part), n - 1, dtype=torch.bool)   # which next-token predictions count
            for i, (c, x) in enumerate(part):
                toks[i, :len(c) + len(x)] = torch.tensor(c + x)
                scored[i, len(c) - 1:len(c) + len(x) - 1] = True
            toks, scored = toks.to(device), scored.to(device)
            logits = model(toks)[:, :-1].double()
            lp = logits.gather(-1, toks[:, 1:, None]).squeeze(-1) - torch.logsumexp(logits, -1)
            out[s:s + len(part)] = (lp * scored).sum(-1).cpu().numpy()
    return out
