"""Family 4: inputs that used to give silently wrong numbers or a traceback are refused by name, before compute."""

import numpy as np
import pytest
import torch

import interp
from interp.errors import CheckpointError, ManifestError, NonFiniteError, PromptError
from interp.prompts.source import PromptSource
from tests.helpers import cli, edit_manifest, no_traceback, one_checkpoint


def _opts(out, **kw):
    return interp.RunOptions(out_dir=out, progress=False, **kw)


def _rewrite(path, fn):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    fn(tensors)
    save_file(tensors, str(path))
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size


def _rehash(series, path, digest, size):
    rel = str(path.relative_to(series))
    edit_manifest(series, lambda m: [c.update(sha256=digest, size=size) for c in m["runs"][0]["checkpoints"]
                                     if c["path"] == rel])


def test_integer_weights_are_refused_naming_the_tensor(series, tmp_path):
    victim = one_checkpoint(series)
    _rehash(series, victim, *_rewrite(victim, lambda t: t.update({"embed.W_E": t["embed.W_E"].to(torch.int32)})))
    with pytest.raises(CheckpointError) as e:
        interp.analyze(series, ["neuron-stats"], options=_opts(tmp_path / "o"))
    assert "embed.W_E" in str(e.value) and "int32" in str(e.value) and "floating" in str(e.value)


@pytest.mark.parametrize("where, value", [("unembed.W_U", float("nan")), ("blocks.0.mlp.W_out", float("inf"))])
def test_non_finite_weights_raise_by_default_and_can_be_kept(series, tmp_path, where, value):
    victim = one_checkpoint(series)

    def poison(t):
        t[where] = t[where].clone()
        t[where].view(-1)[3] = value

    _rehash(series, victim, *_rewrite(victim, poison))
    with pytest.raises(NonFiniteError) as e:
        interp.analyze(series, ["neuron-stats"], options=_opts(tmp_path / "o"))
    assert where in str(e.value) and "--nonfinite keep" in str(e.value)
    r = cli(["analyze", "--checkpoint-dir", series, "--out", tmp_path / "o2", "-a", "neuron-stats", "-q"])
    assert r.exit_code == 2 and where in r.stderr
    no_traceback(r)
    # declared policy: keep and count (the activations of that checkpoint are then non-finite too)
    r = cli(["analyze", "--checkpoint-dir", series, "--out", tmp_path / "o3", "-a", "neuron-stats", "-q",
             "--nonfinite", "keep"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("tokens, match", [
    (np.array([[1, 2, -1]] * 4), "negative"),
    (np.array([[1, 2, 20]] * 4), "d_vocab 20"),
    (np.ones((4, 9), dtype=np.int64), "n_ctx 3"),
])
def test_token_files_that_do_not_fit_the_model_are_refused(series, tmp_path, tokens, match):
    path = tmp_path / "t.npy"
    np.save(path, tokens)
    with pytest.raises(PromptError, match=match) as e:
        interp.analyze(series, ["neuron-stats"], options=_opts(tmp_path / "o", prompts=PromptSource(tokens_file=path)))
    assert str(path) in str(e.value)
    assert not list((tmp_path / "o").rglob("*.h5"))


def test_a_mixture_larger_than_the_model_vocabulary_is_a_manifest_error(series, tmp_path):
    def grow(m):
        m["runs"][0]["mixture"]["d_vocab"] = 40
        m["runs"][0]["mixture"]["n_background"] = 28
    edit_manifest(series, grow)
    with pytest.raises(ManifestError, match="d_vocab"):
        interp.load_series(series)


def test_an_unknown_run_is_an_error_listing_the_runs(series, tmp_path):
    with pytest.raises(ManifestError, match="'nosuchrun'.*tiny"):
        interp.analyze(series, ["neuron-stats"], options=_opts(tmp_path / "o", runs=("nosuchrun",)))
    r = cli(["analyze", "--checkpoint-dir", series, "--out", tmp_path / "o", "--run", "nosuchrun", "-q"])
    assert r.exit_code == 2 and "tiny" in r.stderr
    no_traceback(r)
