"""Per-run state outlives a job: prompts are built, and a token file hashed, once per ``analyze``."""

from collections import Counter

import numpy as np

import interp
from interp.prompts import prompt_set
from interp.prompts import source as prompts_module
from interp.prompts.source import PromptSource


def test_token_file_is_hashed_once_per_analyze(tiny_series_dir, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    tokens = tmp_path / "tokens.npy"
    np.save(tokens, rng.integers(0, 20, size=(300, 3)).astype(np.int32))
    calls = []
    real = prompt_set.content_digest

    def counting(arrays, names, extra=()):
        calls.append(arrays[0].shape)
        return real(arrays, names, extra)

    monkeypatch.setattr(prompt_set, "content_digest", counting)
    opts = interp.RunOptions(out_dir=tmp_path / "out", progress=False, prompts=PromptSource(tokens_file=tokens),
                             workers=1)   # in this process, where the calls are counted
    report = interp.analyze(tiny_series_dir, ["neuron-stats", "stages"], {"stages": {"llc": False}}, opts)
    assert report.ran == 16   # 2 analyzers x 2 seeds x 4 steps, all on the token file
    assert calls.count((300, 3)) == 1, "the token file must be hashed exactly once"   # (the tasks: their own)


def test_prompts_are_built_once_per_run_and_prompt_set(tiny_series_dir, tmp_path, monkeypatch):
    built = Counter()
    real = PromptSource.build

    def counting(self, ref, work_dir=None):
        built[(ref.run, self.split, self.n_background)] += 1
        return real(self, ref, work_dir)

    monkeypatch.setattr(prompts_module.PromptSource, "build", counting)
    opts = interp.RunOptions(out_dir=tmp_path / "out", progress=False, workers=1)
    report = interp.analyze(tiny_series_dir, ["neuron-stats", "stages"], {"stages": {"n_draws": 2, "n_burnin": 1}},
                            opts)
    assert report.ran == 16
    # the evaluation set, once for the run (the stages analyzer's LLC samples the trainer's own batches instead)
    assert built == {("tiny", "test", 512): 1}
