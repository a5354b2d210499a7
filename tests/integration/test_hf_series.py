"""A Pythia-style series of local Hugging Face folders, analysed end to end from a token file."""

import numpy as np
import pytest
import torch

from interp.checkpoints.manifest import discover
from interp.prompts.source import PromptSource
from interp.results import load_results
from tests.helpers import cli


@pytest.fixture(scope="module")
def hf_series(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("pythia")
    for seed in (0, 1):
        for step in (0, 100):
            torch.manual_seed(seed * 1000 + step)
            cfg = transformers.GPTNeoXConfig(vocab_size=40, max_position_embeddings=16, hidden_size=16,
                                             num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                             rotary_pct=0.5)
            transformers.GPTNeoXForCausalLM(cfg).save_pretrained(root / "tiny-neox" / f"seed{seed}" / f"step{step}")
    tokens = np.random.default_rng(0).integers(0, 40, size=(64, 8))
    np.save(root / "tokens.npy", tokens)
    return root


def test_hf_step_folders_are_discovered(hf_series):
    series = discover(hf_series)
    refs = series.refs()
    assert sorted((r.seed, r.step) for r in refs) == [(0, 0), (0, 100), (1, 0), (1, 100)]
    assert all(r.format == "hf" and r.sha256 for r in refs)


def test_analyze_hf_series_from_a_token_file(hf_series, tmp_path):
    r = cli(["analyze", "--checkpoint-dir", str(hf_series), "--tokens",
                                 str(hf_series / "tokens.npy"), "-a", "neuron-stats", "-a", "universal-neurons",
                                 "--out", str(tmp_path), "--quiet", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    stats = load_results(tmp_path, "neuron-stats")
    assert len(stats) == 4 and stats[0].arrays["kurtosis"].shape == (2, 32)
    uni = load_results(tmp_path, "universal-neurons")
    assert len(uni) == 2 and uni[0].arrays["max_corr"].shape == (2, 2, 2, 32)
    assert r.output.count("units run") == 1


def test_series_without_tasks_needs_a_token_file(hf_series, tmp_path):
    r = cli(["analyze", "--checkpoint-dir", str(hf_series), "-a", "neuron-stats",
                                 "--out", str(tmp_path), "--quiet"])
    assert r.exit_code == 2 and "--tokens" in r.output


def test_universal_neurons_layer_by_layer_under_a_memory_budget(hf_series, tmp_path):
    """A budget too small for more than one block at a time: one (seed pair, layer pair) block per pass over the
    cache, the same numbers, bit for bit."""
    import interp

    runs = {}
    for name, budget in (("whole", 4.0), ("by_layer", 1e-9)):
        out = tmp_path / name
        interp.analyze(hf_series, ["universal-neurons"], {"universal-neurons": {"memory_gb": budget}},
                       interp.RunOptions(out_dir=out, progress=False, device="cpu",
                                         prompts=PromptSource(tokens_file=hf_series / "tokens.npy")))
        runs[name] = {r.unit_id: r for r in load_results(out, "universal-neurons")}
    assert runs["whole"].keys() == runs["by_layer"].keys() and len(runs["whole"]) == 2
    for k, whole in runs["whole"].items():
        by_layer = runs["by_layer"][k]
        assert whole.scalars["passes"] == 1 and by_layer.scalars["passes"] == 4   # 2 seeds, 2 layers: 4 blocks
        for key in ("max_corr", "baseline_max", "matched_corr", "excess_corr", "best_match"):
            np.testing.assert_array_equal(by_layer.arrays[key], whole.arrays[key])
