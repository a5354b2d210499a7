"""nanoGPT checkpoints: a small reimplementation of nanoGPT's module layout (same state-dict keys, same maths),
saved as its ``train.py`` saves ``ckpt.pt``, loaded by interp: logits equal within 1e-4, with and without biases,
with and without torch.compile's ``_orig_mod.`` prefix."""

from __future__ import annotations

import pickle

import pytest
import torch

from tests.nanogpt_reference import save_ckpt


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("compiled", [False, True])
def test_logits_equal_the_reimplementation(tmp_path, bias, compiled):
    import interp

    reference = save_ckpt(tmp_path / "ckpt.pt", bias=bias, compiled=compiled).eval()
    tokens = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(2))
    model = interp.load_checkpoint(tmp_path / "ckpt.pt", device="cpu")   # no pickle opt-in: weights_only suffices
    with torch.no_grad():
        diff = (model(tokens) - reference(tokens)).abs().max().item()
    assert diff <= 1e-4, diff


def test_a_ckpt_holding_more_than_tensors_is_refused(tmp_path):
    import interp
    from interp.errors import CheckpointError

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": {}, "model_args": {}, "evil": Evil()}, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        interp.load_checkpoint(tmp_path / "ckpt.pt")


def test_meta_pkl_is_parsed_without_running_anything(tmp_path):
    from interp.checkpoints.formats.nanogpt import read_meta
    from interp.errors import UnsafeInputError

    chars = sorted(set("hello world"))
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": len(chars), "stoi": {c: i for i, c in
                                                                                          enumerate(chars)},
                                                      "itos": dict(enumerate(chars))}))
    meta = read_meta(tmp_path / "meta.pkl")
    assert meta["stoi"]["h"] == chars.index("h")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"stoi": Evil()}))
    with pytest.raises(UnsafeInputError, match="builtins.print"):
        read_meta(tmp_path / "bad.pkl")
