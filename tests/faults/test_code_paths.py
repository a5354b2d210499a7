"""Family 7: no file can make interp run code or exhaust memory: pickles need the opt-in (every pickle format),
result files cannot name a class to import, and YAML documents are bounded."""

import json
import sys
import time

import pytest
import torch
import yaml

import interp
from interp.errors import ManifestError, ResultError, UnsafeInputError
from tests.helpers import cli, no_traceback


def test_a_pickle_in_an_hf_folder_needs_the_opt_in(tmp_path):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    folder = tmp_path / "run" / "seed0" / "step1"
    cfg = GPTNeoXConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    model = GPTNeoXForCausalLM(cfg)
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    series = interp.load_series(tmp_path)
    with pytest.raises(UnsafeInputError, match="pytorch_model.bin.*allow_pickle"):
        interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=tmp_path / "o", progress=False,
                                                                          prompts=interp.PromptSource(
                                                                              tokens_file=_tokens(tmp_path))))


def _tokens(tmp_path):
    import numpy as np

    path = tmp_path / "t.npy"
    np.save(path, np.random.default_rng(0).integers(0, 32, size=(8, 8)))
    return path


def test_a_result_file_cannot_choose_what_is_imported(series, tmp_path):
    out = tmp_path / "o"
    interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=out, progress=False))
    unit = out / "neuron-stats" / "tiny" / "seed0" / "step20.json"
    data = json.loads(unit.read_text())
    data["result_class"] = "antigravity:Fly"
    unit.write_text(json.dumps(data))
    before = set(sys.modules)
    r = interp.load_result(unit)
    assert "antigravity" not in sys.modules and "antigravity" not in before
    assert type(r).__name__ == "NeuronStatsResult"


def test_a_damaged_result_file_is_a_result_error(tmp_path, series):
    out = tmp_path / "o"
    interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=out, progress=False))
    unit = out / "neuron-stats" / "tiny" / "seed0" / "step20.json"
    unit.write_text("{not json")
    with pytest.raises(ResultError, match="step20.json"):
        interp.load_result(unit)


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("runs: *a11")
    path = tmp_path / "manifest.yaml"
    path.write_text("\n".join(lines))
    t = time.perf_counter()
    with pytest.raises(ManifestError, match="alias"):
        interp.load_series(path)
    assert time.perf_counter() - t < 5
    r = cli(["verify", "--manifest", path])
    assert r.exit_code == 2 and "alias" in r.stderr
    no_traceback(r)


def test_an_oversized_manifest_is_refused(tmp_path):
    path = tmp_path / "manifest.yaml"
    with open(path, "w") as f:
        f.write("description: '")
        f.write("x" * (65 << 20))
        f.write("'\nruns: []\n")
    with pytest.raises(ManifestError, match="MB"):
        interp.load_series(path)


@pytest.mark.slow
def test_a_large_manifest_loads_in_bounded_time(tmp_path):
    """100,000 entries: seconds, not minutes (benchmarks/manifest.py has the figure)."""
    n = 100_000
    runs = [{"name": "r", "model": {"n_layers": 1, "d_vocab": 8},
             "checkpoints": [{"seed": i % 5, "step": i, "path": f"r/step{i}.safetensors", "sha256": "a" * 64,
                              "size": 10} for i in range(n)]}]
    path = tmp_path / "big.yaml"
    path.write_text(yaml.dump({"runs": runs}, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
    (tmp_path / "r").mkdir()
    t = time.perf_counter()
    series = interp.load_series(path)
    refs = series.refs()
    groups = series.seed_groups()
    elapsed = time.perf_counter() - t
    assert len(refs) == n and len(groups) == n
    assert elapsed < 30, f"{elapsed:.1f} s"
