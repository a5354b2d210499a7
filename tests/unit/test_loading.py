import json

import pytest
import torch

from interp.checkpoints.loading import (
    ModelSlot,
    build_model,
    load_hf_folder,
    load_model,
    resolve_device,
    save_checkpoint,
)
from interp.checkpoints.manifest import Processing, load_manifest
from interp.errors import CheckpointError, ConfigError, UnsafeInputError
from tests.helpers import tiny_model_kwargs


@pytest.fixture
def saved(tmp_path):
    kw = {**tiny_model_kwargs(), "seed": 3}
    model = build_model(kw)
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path)
    return model, kw, path


def test_safetensors_round_trip_is_exact(saved):
    model, kw, path = saved
    loaded = load_model(path, kw, device="cpu")
    toks = torch.randint(0, 20, (5, 3))
    assert torch.equal(model(toks), loaded(toks))
    assert not loaded.training


def test_pickle_refused_unless_opted_in_then_weights_only(saved, tmp_path):
    model, kw, _ = saved
    pt = tmp_path / "m.pt"
    torch.save(dict(model.named_parameters()), pt)
    with pytest.raises(UnsafeInputError, match="pickle.*allow_pickle=True"):
        load_model(pt, kw, device="cpu")
    loaded = load_model(pt, kw, device="cpu", allow_pickle=True)
    toks = torch.randint(0, 20, (4, 3))
    assert torch.equal(model(toks), loaded(toks))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"embed.W_E": Evil()}, bad)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_model(bad, kw, device="cpu", allow_pickle=True)


def test_shape_mismatch_names_file_and_tensor_before_allocating(saved):
    _, kw, path = saved
    with pytest.raises(CheckpointError) as e:
        load_model(path, {**kw, "d_mlp": 32}, device="cpu")
    assert str(path) in str(e.value) and "blocks.0.mlp.W_in" in str(e.value)
    with pytest.raises(CheckpointError, match="vocabulary mismatch") as e:
        load_model(path, {**kw, "d_vocab": 21}, device="cpu")
    assert "W_E" in str(e.value) or "W_U" in str(e.value)
    with pytest.raises(CheckpointError, match="missing"):
        load_model(path, {**kw, "n_layers": 2}, device="cpu")


def test_bad_files_and_devices(tmp_path, saved):
    _, kw, _ = saved
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_model(junk, kw, device="cpu")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "none.safetensors", kw)
    with pytest.raises(ConfigError, match="auto"):
        resolve_device("tpu")
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_weight_processing_is_off_by_default_and_applied_only_when_declared(tmp_path):
    kw = {**tiny_model_kwargs(normalization_type="LN"), "seed": 1}
    model = build_model(kw)
    path = tmp_path / "ln.safetensors"
    save_checkpoint(model, path)
    plain = load_model(path, kw, device="cpu")
    assert plain.cfg.normalization_type == "LN"
    folded = load_model(path, kw, device="cpu", processing=Processing(fold_ln=True, center_writing_weights=True))
    assert folded.cfg.normalization_type == "LNPre"
    toks = torch.randint(0, 20, (6, 3))
    lp = lambda m: torch.log_softmax(m(toks), -1)  # noqa: E731
    torch.testing.assert_close(lp(plain), lp(folded), atol=1e-4, rtol=0)
    assert Processing().key() != Processing(fold_ln=True).key()


def test_model_slot_reuses_one_module_and_matches_fresh_loads(tiny_series_dir):
    series = load_manifest(tiny_series_dir / "manifest.yaml")
    slot = ModelSlot()
    toks = torch.randint(0, 20, (8, 3))
    first = slot.get(series.refs()[0], "cpu")
    for ref in series.refs():
        m = slot.get(ref, "cpu")
        assert m is first  # same architecture: loaded in place
        fresh = load_model(ref.path, ref.model, device="cpu")
        assert torch.equal(m(toks), fresh(toks))
    slot.clear()


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox"])
def test_local_hf_folder_matches_transformers_logits(tmp_path, arch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4)
        hf = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.GPTNeoXConfig(vocab_size=50, max_position_embeddings=16, hidden_size=32,
                                         num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                         rotary_pct=0.25, use_parallel_residual=True)
        hf = transformers.GPTNeoXForCausalLM(cfg)
    hf.eval()
    folder = tmp_path / "step1000"
    hf.save_pretrained(folder)
    model = load_hf_folder(folder, device="cpu")
    toks = torch.randint(0, 50, (3, 12))
    with torch.no_grad():
        ref = hf(toks).logits
        ours = model(toks)
    assert (ref - ours).abs().max().item() <= 1e-4
    assert model.cfg.normalization_type == "LN"  # no folding unless declared


def test_hf_folder_errors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["RwkvForCausalLM"]}))
    with pytest.raises(CheckpointError, match="RwkvForCausalLM.*supported: GPT2LMHeadModel"):
        load_hf_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(CheckpointError, match="cannot read .*n_layers"):
        load_hf_folder(tmp_path)
    with pytest.raises(CheckpointError, match="config.json"):
        load_hf_folder(tmp_path / "missing")
