"""The batches interp's trainer draws, as a pure function of (data seed, step), for analyzers that must see the data
as training saw it (the LLC's loss, the mixed batches of gradient interference) and for the trainer itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from interp.prompts.prompt_set import PromptSet

DEFAULT_BATCH = {"mixture": 512, "language": 64}   # the trainer's defaults, for series without their train settings


def batch_fn(mixture: Any, language: Any, batch_size: int | None, data_seed: int) -> Callable[[int], PromptSet]:
    """batch(step) -> PromptSet: a task mixture's batches (``MixtureStream``), or a synthetic language's."""
    if mixture is not None:
        from interp.toys.tasks import MixtureStream

        return MixtureStream(mixture, batch_size or 1, data_seed).batch
    from interp.toys.language import language_prompts

    size = batch_size or DEFAULT_BATCH["language"]
    return lambda step: language_prompts(language, size, np.random.default_rng([data_seed, step]))


def batches_near(ref: Any, n_prompts: int, at_least: int = 1) -> tuple[list[PromptSet], list[int]] | None:
    """The trainer's batches just before ``ref``'s step (from the step after it when it is step 0), enough of them
    for ``n_prompts`` prompts and at least ``at_least``, with their steps; None for a series interp's trainer did not
    make (no mixture, no language). The batch size and data seed are read from the run's train settings where
    recorded, else the trainer's defaults and the seed."""
    if ref.mixture_spec is None and ref.language_spec is None:
        return None
    train = ref.train_settings()
    kind = "mixture" if ref.mixture_spec is not None else "language"
    size = train.get("batch_size") or DEFAULT_BATCH[kind]
    draw = batch_fn(ref.mixture_spec, ref.language_spec, size, train.get("data_seed", ref.seed))
    k = max(at_least, -(-n_prompts // size))
    first = max(0, ref.step - k)
    steps = list(range(first, first + k))
    return [draw(s) for s in steps], steps
