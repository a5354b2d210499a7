"""Family 2: a checkpoint is used only if its bytes are the ones the manifest records, and provenance records the
hash actually read."""

import hashlib
import json
import os

import pytest

import interp
from interp.errors import IntegrityError
from tests.helpers import (
    cli,
    edit_manifest,
    no_partial_files,
    no_traceback,
    one_checkpoint,
)


def _flip_one_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_is_caught_before_any_compute(series, tmp_path):
    victim = one_checkpoint(series, seed=1, step=4)
    _flip_one_bit(victim)
    with pytest.raises(IntegrityError) as e:
        interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=tmp_path / "o", progress=False))
    msg = str(e.value)
    assert "step000004.safetensors" in msg and "sha256" in msg and "tiny/seed1/step4" in msg
    assert not list((tmp_path / "o").rglob("*.json")), "nothing may be computed from unverified weights"


def test_a_size_mismatch_is_caught(series, tmp_path):
    with open(one_checkpoint(series), "ab") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError, match="size"):
        interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=tmp_path / "o", progress=False))


def test_provenance_records_the_hash_read_even_without_one_in_the_manifest(series, tmp_path):
    edit_manifest(series, lambda m: [c.update(sha256=None, size=None) for c in m["runs"][0]["checkpoints"]])
    interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=tmp_path / "o", progress=False))
    unit = json.loads((tmp_path / "o" / "neuron-stats" / "tiny" / "seed0" / "step20.json").read_text())
    expected = hashlib.sha256(one_checkpoint(series).read_bytes()).hexdigest()
    assert unit["provenance"]["checkpoints"][0]["sha256"] == expected


def test_a_file_replaced_after_verification_is_not_loaded(series, tmp_path):
    from interp.runner.plan import verify_refs
    from interp.trust.hashes import Verifier

    refs = verify_refs(interp.load_series(series).refs(), Verifier.default())
    victim = one_checkpoint(series)
    _flip_one_bit(victim)
    os.utime(victim, ns=(1, 1))
    from interp.checkpoints.loading import load_ref

    with pytest.raises(IntegrityError, match="changed after it was verified"):
        load_ref(next(r for r in refs if r.path == victim), device="cpu")


def test_verified_hashes_are_remembered(series, tmp_path):
    from interp import api

    opts = interp.RunOptions(out_dir=tmp_path / "o", progress=False)
    interp.analyze(series, ["neuron-stats"], options=opts)
    verifier = api.verifier_for(opts)
    before = verifier.hashed
    interp.analyze(series, ["neuron-stats"], options=opts)
    assert api.verifier_for(opts).hashed == before, "unchanged files are not hashed again"


def test_cli_integrity_failure_exits_nonzero_without_traceback(series, tmp_path):
    _flip_one_bit(one_checkpoint(series))
    r = cli(["analyze", "--checkpoint-dir", series, "--out", tmp_path / "o", "-a", "neuron-stats", "-q"])
    assert r.exit_code == 2
    no_traceback(r)
    assert "step000020.safetensors" in r.stderr
    no_partial_files(tmp_path / "o")
