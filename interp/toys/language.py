"""A seeded synthetic language with sparse, recurring structure, for training tiny models with universal neurons.

A sequence is a class-bigram background (``n_classes`` hidden classes; next class from Dirichlet(``alpha``)
transition rows; a token Zipf(``zipf``) within its class) interrupted by:

- phrases: ``n_phrases`` fixed token strings of length ``phrase_len`` (tokens drawn from the whole background
  vocabulary, so a single token never reveals a phrase; every phrase has a distinct first bigram). At each free
  position a phrase starts with probability ``p_phrase``, chosen Zipf(``phrase_zipf``) over phrases, and is emitted
  to its end;
- copies: with probability ``p_copy`` a free position starts a verbatim copy of the ``copy_len`` tokens found
  ``copy_back`` (uniform in [copy_len, t]) positions earlier (an induction target);
- successors: with probability ``p_successor`` a free position emits ``succ[prev]``, a fixed random bijection of the
  tokens (a full-rank bigram that a d_model < d_vocab embedding cannot carry linearly: it needs token lookups);
  with ``n_successor`` > 0 only that many random tokens (triggers) have a successor;
- a delimiter (token 0) every ``delim_every`` positions (0: none), which also ends any phrase or copy in progress.

The language is a pure function of ``seed`` (its tables are built on construction); ``sample(n_seq, rng)`` draws
from it, so a training batch is a pure function of whatever seeds ``rng`` (``default_rng([data_seed, step])``).
Only numpy. Written for the ``lang`` series (universal neurons, issue 17); the recipe that gives them is in
``analyses/make_bundled.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.config import Options, option
from interp.errors import ConfigError
from interp.prompts.prompt_set import PromptSet

DELIM = 0
LANGUAGE_EVAL_SEED = 777   # the held-out sequences a language run's checkpoints are evaluated on


@dataclass(frozen=True)
class LanguageSpec(Options):
    """A synthetic language (module doc); every field a knob of its structure, validated on construction."""

    d_vocab: int = option(256, ge=2)
    n_ctx: int = option(64, ge=2)
    n_classes: int = option(16, ge=1)
    alpha: float = option(0.3, gt=0)          # Dirichlet concentration of the class transition rows
    zipf: float = option(1.1, ge=0)           # token frequency within a class ~ rank ** -zipf
    n_phrases: int = option(0, ge=0)
    phrase_len: int = option(4, ge=1)
    p_phrase: float = option(0.0, ge=0, le=1)      # chance that a free position starts a phrase
    phrase_zipf: float = option(0.0, ge=0)         # phrase frequency ~ rank ** -phrase_zipf (0: uniform)
    p_copy: float = option(0.0, ge=0, le=1)        # chance that a free position starts a copy of an earlier span
    copy_len: int = option(4, ge=1)
    p_successor: float = option(0.0, ge=0, le=1)   # chance that a free position emits the previous token's successor
    n_successor: int = option(0, ge=0)             # how many tokens have a successor (0: all of them)
    delim_every: int = option(0, ge=0)
    seed: int = option(0, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_classes > self.d_vocab - 1:
            raise ConfigError(f"LanguageSpec.n_classes {self.n_classes} exceeds the {self.d_vocab - 1} non-delimiter "
                              f"tokens")
        if self.p_phrase + self.p_copy > 1:
            raise ConfigError("LanguageSpec: p_phrase + p_copy must be at most 1")
        object.__setattr__(self, "_tables", _tables(self))

    @property
    def tables(self) -> dict:
        return self.__dict__["_tables"]

    def to_dict(self) -> dict:
        return self.to_json()

    def _background(self, prev: np.ndarray, u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
        t = self.tables
        c = np.minimum((u1[:, None] > t["trans"][t["cls"][prev]]).sum(1), self.n_classes - 1)
        out = np.empty(len(prev), np.int64)
        for k in np.unique(c):
            rows = c == k
            idx = np.searchsorted(np.cumsum(t["within"][k]), u2[rows], side="right")
            out[rows] = t["members"][k][np.minimum(idx, len(t["members"][k]) - 1)]
        return out

    def sample(self, n_seq: int, rng: np.random.Generator) -> np.ndarray:
        """[n_seq, n_ctx] int64 tokens."""
        t = self.tables
        u = rng.random((6, n_seq, self.n_ctx))
        toks = np.zeros((n_seq, self.n_ctx), np.int64)
        mode = np.zeros(n_seq, np.int64)          # 0 free, 1 phrase, 2 copy
        which = np.zeros(n_seq, np.int64)         # phrase index, or copy source offset
        left = np.zeros(n_seq, np.int64)          # tokens still to emit in the phrase / copy
        prev = np.full(n_seq, DELIM, np.int64)
        rows = np.arange(n_seq)
        for i in range(self.n_ctx):
            if self.delim_every and i % self.delim_every == 0:
                toks[:, i], left[:], mode[:] = DELIM, 0, 0
                prev = toks[:, i]
                continue
            mode[left == 0] = 0
            free = mode == 0
            start_p = free & (u[0, :, i] < self.p_phrase) & (self.n_phrases > 0)
            which[start_p] = np.searchsorted(t["phrase_p"], u[1, start_p, i], side="right").clip(0, self.n_phrases - 1)
            mode[start_p], left[start_p] = 1, self.phrase_len
            back = np.floor(self.copy_len + u[2, :, i] * (i - self.copy_len + 1)).astype(np.int64)
            start_c = free & ~start_p & (u[0, :, i] < self.p_phrase + self.p_copy) & (i >= 2 * self.copy_len)
            which[start_c], mode[start_c], left[start_c] = back[start_c], 2, self.copy_len
            tok = self._background(prev, u[3, :, i], u[4, :, i])
            sc = free & ~start_p & ~start_c & (u[5, :, i] < self.p_successor) & (t["succ"][prev] > 0)
            tok[sc] = t["succ"][prev[sc]]
            ph = mode == 1
            tok[ph] = t["phrases"][which[ph], self.phrase_len - left[ph]]
            cp = mode == 2
            tok[cp] = toks[rows[cp], i - which[cp]]
            left[ph | cp] -= 1
            toks[:, i] = tok
            prev = tok
        return toks


def _tables(spec: LanguageSpec) -> dict:
    """The language's fixed tables, a pure function of its fields (``seed`` included)."""
    rng = np.random.default_rng([0x1A46, spec.seed])
    n_bg = spec.d_vocab - 1                                     # token 0 is the delimiter
    tok_class = rng.integers(0, spec.n_classes, n_bg)
    tok_class[: spec.n_classes] = np.arange(spec.n_classes)     # no empty class
    members = [1 + np.flatnonzero(tok_class == c) for c in range(spec.n_classes)]
    within = [rng.permutation(len(m)) + 1.0 for m in members]  # random Zipf ranks inside each class
    within = [r ** -spec.zipf / (r ** -spec.zipf).sum() for r in within]
    trans = rng.dirichlet(np.full(spec.n_classes, spec.alpha), size=spec.n_classes + 1)  # last row: after DELIM
    cls = np.zeros(spec.d_vocab, np.int64)
    cls[1:], cls[DELIM] = tok_class, spec.n_classes
    phrases = np.zeros((spec.n_phrases, spec.phrase_len), np.int64)
    seen: set[tuple[int, int]] = set()
    for i in range(spec.n_phrases):
        while True:
            p = rng.integers(1, spec.d_vocab, spec.phrase_len)
            if (p[0], p[1]) not in seen:
                seen.add((p[0], p[1]))
                phrases[i] = p
                break
    succ = np.concatenate([[0], 1 + rng.permutation(n_bg)])     # a random bijection of the non-delimiter tokens
    if spec.n_successor:                                         # only n_successor random tokens keep theirs
        succ[1 + rng.permutation(n_bg)[spec.n_successor:]] = -1
    w = np.arange(1, spec.n_phrases + 1.0) ** -spec.phrase_zipf
    return dict(members=members, within=within, trans=np.cumsum(trans, 1), cls=cls, succ=succ, phrases=phrases,
                phrase_p=np.cumsum(w / w.sum()))


def language_prompts(lang: LanguageSpec, n_seq: int, rng: np.random.Generator) -> PromptSet:
    """``n_seq`` sequences of the language as prompts, every next-token prediction scored."""
    toks = lang.sample(n_seq, rng)
    return PromptSet(toks, np.full(n_seq, -1), np.ones((n_seq, lang.n_ctx - 1), bool), ())
