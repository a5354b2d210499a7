"""Where evaluation prompts come from: a run's task mixture, or a user's token file.

``PromptSource.build(ref)`` makes the ``PromptSet`` a checkpoint is run on; ``PromptSource.key(ref)`` says what that
set depends on, so a ``Context`` builds (and hashes) it once per process however many checkpoints share it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from interp.config import Options, option
from interp.errors import ConfigError, PromptError

if TYPE_CHECKING:
    from interp.checkpoints.manifest import CheckpointRef
    from interp.prompts.prompt_set import PromptSet


@dataclass(frozen=True)
class PromptSource(Options):
    """The run's task mixture (test splits of every task plus ``n_background`` background sequences); or, for series
    that have no mixture (e.g. Hugging Face checkpoints), a user's ``tokens_file``: a ``.npy`` of [prompt, pos]
    integers, or text (``.txt``, ``.jsonl`` with a ``text`` field) tokenized with the checkpoint's own tokenizer
    (``tokenizer``: another one) into windows of ``window`` tokens (default: the model's context;
    ``interp.prompts.text``); or ``fixed`` prompts (tests, planted models)."""

    n_background: int = option(512, ge=0)
    n_sequences: int = option(1600, ge=1)   # of a language run (1,600 x 64 tokens: the >= 100k universal neurons want)
    split: Literal["train", "test", "all"] = "test"
    tokens_file: Path | None = None
    seed: int = option(12345, ge=0)
    tokenizer: Path | None = None
    window: int | None = option(None, ge=2)
    max_tokens: int | None = option(None, ge=2)   # read at most this many tokens of a text or token file
    # a PromptSet given directly (tests, planted models); typed Any so that building options imports no numpy
    fixed: Any = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fixed is not None:
            from interp.prompts.prompt_set import PromptSet

            if not isinstance(self.fixed, PromptSet):
                raise ConfigError(f"PromptSource.fixed = {type(self.fixed).__name__}: expected a PromptSet")

    @property
    def is_text(self) -> bool:
        from interp.prompts.text import TEXT_SUFFIXES

        return self.tokens_file is not None and Path(self.tokens_file).suffix in TEXT_SUFFIXES

    def _text_parts(self, ref: CheckpointRef) -> tuple[Path, int]:
        from interp.prompts.text import find_tokenizer

        window = self.window or int(ref.model.get("n_ctx") or 0)
        if window < 2:
            raise ConfigError(f"run {ref.run!r}: the model's context is unknown; pass window=N (--window)")
        return find_tokenizer(ref.path, ref.format, self.tokenizer), window

    def key(self, ref: CheckpointRef) -> tuple:
        """What the prompts for ``ref`` depend on (equal keys, equal prompts)."""
        if self.fixed is not None:
            return ("fixed", id(self.fixed))
        if self.tokens_file is not None:
            path = Path(self.tokens_file)
            try:
                st = path.resolve().stat()
            except OSError:
                raise ConfigError(f"token file {path} does not exist (--tokens)") from None
            if self.is_text:
                from interp.prompts.text import key

                tokenizer, window = self._text_parts(ref)
                return ("text", key(path, tokenizer, window, self.max_tokens))
            return ("tokens", str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, self.max_tokens,
                    self._special_ids(ref))
        if ref.language:
            return ("language", json.dumps(ref.language, sort_keys=True), self.n_sequences, self.split, self.seed)
        return ("mixture", json.dumps(ref.mixture, sort_keys=True), self.n_background, self.split, self.seed)

    def _special_ids(self, ref: CheckpointRef) -> tuple[int, ...]:
        """The special token ids of a token file's tokenizer, when one is beside the checkpoint (else none: a token
        file carries ids only)."""
        from interp.prompts.text import codec, find_tokenizer

        if ref is None:
            return ()
        try:
            return codec(find_tokenizer(ref.path, ref.format, self.tokenizer)).special_ids
        except ConfigError:
            return ()

    def describe(self, ref: CheckpointRef) -> str:
        if self.fixed is not None:
            return "the fixed prompts"
        if self.tokens_file is not None:
            return f"token file {self.tokens_file}"
        return f"the {'language' if ref.language else 'task mixture'} of run {ref.run!r}"

    def build(self, ref: CheckpointRef, work_dir: Path | None = None) -> PromptSet:
        """The prompts for ``ref``; text is tokenized into ``work_dir``/prompts (the cache folder)."""
        import numpy as np

        from interp.prompts.prompt_set import PromptSet
        from interp.toys.tasks import N_CTX, MixtureStream, eval_sets

        if self.fixed is not None:
            return self.fixed
        if self.tokens_file is not None and self.is_text:
            import tempfile

            from interp.prompts.text import codec, key, tokenize_to_windows

            tokenizer, window = self._text_parts(ref)
            folder = Path(work_dir or Path(tempfile.gettempdir()) / "interp") / "prompts"
            out = folder / f"{key(Path(self.tokens_file), tokenizer, window, self.max_tokens)}.npy"
            windows = tokenize_to_windows(Path(self.tokens_file), tokenizer, window, out, self.max_tokens)
            return token_file_prompts(windows, special_ids=codec(tokenizer).special_ids)
        if self.tokens_file is not None:
            return token_file_prompts(Path(self.tokens_file), self.max_tokens, self._special_ids(ref))
        if ref.language:
            from interp.toys.language import LANGUAGE_EVAL_SEED, language_prompts

            # held-out sequences ("test"), or the first training batch's stream for "train" (the LLC's loss)
            seed = LANGUAGE_EVAL_SEED if self.split == "test" else self.seed
            return language_prompts(ref.language_spec, self.n_sequences, np.random.default_rng(seed))
        spec = ref.mixture_spec
        if spec is None:
            raise ConfigError(f"run {ref.run!r} has no task mixture in its manifest; pass prompts with --tokens: a "
                              f".npy of [prompt, pos] token ids, or a .txt / .jsonl text file (tokenized with the "
                              f"checkpoint's own tokenizer)")
        parts = list(eval_sets(spec, self.split).values())
        if self.n_background and spec.n_background:
            stream = MixtureStream(spec, batch_size=self.n_background, seed=self.seed)
            bg = stream.background.sample(self.n_background, np.random.default_rng(self.seed))
            parts.append(PromptSet(bg, np.full(len(bg), -1), np.ones((len(bg), N_CTX - 1), bool), stream.task_names))
        names = parts[0].task_names if parts else ()
        return PromptSet.concat([PromptSet(p.tokens, p.task_id, p.loss_mask, names) for p in parts])


def check_prompts(prompts: PromptSet, model: dict, where: str) -> None:
    """Refuse prompts the model cannot run on, before any compute: negative ids (numpy would wrap them), ids past
    the vocabulary, sequences longer than the context."""
    n_ctx, d_vocab = model.get("n_ctx"), model.get("d_vocab")
    length = prompts.tokens.shape[1] if prompts.tokens.ndim == 2 else None
    if n_ctx is not None and length is not None and length > n_ctx:
        raise PromptError(f"{where}: prompts have {length} positions, more than the model's n_ctx {n_ctx}; cut "
                          f"them into windows of at most {n_ctx}")
    if not len(prompts):
        raise PromptError(f"{where}: no prompts")
    lo, hi = prompts.token_range()
    if lo < 0:
        raise PromptError(f"{where}: holds a negative token id ({lo}); token ids must lie in [0, d_vocab)")
    if d_vocab is not None and hi >= d_vocab:
        raise PromptError(f"{where}: holds token id {hi}, but the model's d_vocab {d_vocab} allows ids up to "
                          f"{d_vocab - 1}")


def token_file_prompts(path: Path, max_tokens: int | None = None, special_ids: tuple[int, ...] = ()) -> PromptSet:
    """A user's token file as prompts, without reading it into memory: the tokens stay a read-only memory map (each
    consumer reads its batch's rows and widens them to int64 itself) and every prediction is scored through a
    broadcast view, so a 1e8-token file costs its page cache, not its size in RAM. ``max_tokens``: only the first
    windows holding at most that many tokens (at least one). Each row is a window of text: its first position and
    ``special_ids`` are left out of activation statistics by default (``PromptSet.statistics_mask``)."""
    import numpy as np

    from interp.prompts.prompt_set import PromptSet

    if not path.exists():
        raise ConfigError(f"token file {path} does not exist (--tokens)")
    try:
        toks = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:   # e.g. an object array, which cannot be memory-mapped
        raise PromptError(f"{path}: not a plain .npy array ({e})") from None
    if toks.ndim != 2 or toks.dtype.kind not in "iu" or toks.shape[1] < 2:
        raise PromptError(f"{path}: expected a 2-D integer array [prompt, pos] with pos >= 2, got "
                          f"{toks.dtype} {toks.shape}")
    if max_tokens is not None:
        toks = toks[:max(1, max_tokens // toks.shape[1])]
    n = toks.shape[0]
    return PromptSet(toks, np.full(n, -1, dtype=np.int32), np.broadcast_to(np.True_, (n, toks.shape[1] - 1)), (),
                     tuple(special_ids), True)
