"""The synthetic language (interp/language.py) and language runs: trained by interp's trainer, recorded in the
manifest, analysed on held-out sequences of the language."""

from __future__ import annotations

import json

import numpy as np
import pytest

import interp
from interp.errors import ConfigError
from interp.toys.language import DELIM, LanguageSpec


def test_the_language_is_a_pure_function_of_its_seeds():
    spec = LanguageSpec(d_vocab=64, n_ctx=32, n_classes=4, n_phrases=8, p_phrase=0.2, p_successor=0.3,
                        delim_every=8, seed=3)
    a = spec.sample(50, np.random.default_rng(1))
    assert np.array_equal(a, LanguageSpec(**spec.to_dict()).sample(50, np.random.default_rng(1)))
    assert not np.array_equal(a, spec.sample(50, np.random.default_rng(2)))
    assert a.shape == (50, 32) and a.min() >= 0 and a.max() < 64
    assert (a[:, ::8] == DELIM).all()                            # a delimiter every 8 positions


def test_successors_follow_their_bijection():
    spec = LanguageSpec(d_vocab=40, n_ctx=64, n_classes=1, p_successor=1.0)
    toks = spec.sample(20, np.random.default_rng(0))
    succ = spec.tables["succ"]
    assert (toks[:, 1:] == succ[toks[:, :-1]]).mean() > 0.99    # p = 1: every token its predecessor's successor
    assert sorted(succ[1:]) == list(range(1, 40))                # a bijection of the non-delimiter tokens


def test_bad_language_options_are_refused():
    with pytest.raises(ConfigError, match="p_successor"):
        LanguageSpec(p_successor=1.5)
    with pytest.raises(ConfigError, match="n_classes"):
        LanguageSpec(d_vocab=8, n_classes=9)


def test_a_language_series_trains_and_analyses(tmp_path):
    lang = LanguageSpec(d_vocab=32, n_ctx=16, n_classes=1, p_successor=0.5)
    model = dict(n_layers=2, d_model=16, d_mlp=32, n_heads=2, d_head=8, n_ctx=16, d_vocab=32, act_fn="relu",
                 normalization_type="LN")
    for seed in (0, 1):
        interp.train(interp.TrainConfig(run="lang", model=model, language=lang, seed=seed, data_seed=5, n_steps=30,
                                        batch_size=16, lr=3e-3, n_checkpoints=3, schedule="cosine", warmup=5,
                                        decay_matrices_only=True), tmp_path / "series", progress=False)
    manifest = (tmp_path / "series" / "manifest.yaml").read_text()
    assert "language:" in manifest and "language/loss" in manifest
    out = tmp_path / "out"
    report = interp.analyze(tmp_path / "series", ["neuron-stats", "universal-neurons", "stages", "task-allocation"],
                            {"stages": {"n_draws": 3, "n_burnin": 1, "n_chains": 1}},
                            interp.RunOptions(out_dir=out, progress=False, prompts=interp.PromptSource(n_sequences=64)))
    assert report.summaries["universal-neurons"]["units"] == 3          # one per step, two seeds each
    assert "--tasks FILE" in report.summaries["task-allocation"]["skipped"]   # names the flag that supplies it
    unit = json.loads((out / "neuron-stats" / "lang" / "seed1" / "step30.json").read_text())
    assert unit["scalars"]["n_tokens"] == 64 * 16
