"""Family 3: a unit counts as complete only for the same checkpoint bytes, the same full analyzer config, the same
prompts and the same cache key (storage dtype included)."""

import hashlib
import json

import numpy as np

import interp
from interp.prompts.source import PromptSource
from tests.helpers import edit_manifest, one_checkpoint


def _opts(out, **kw):
    # one process: a test that patches a class (a method version) must run the units where the patch is
    return interp.RunOptions(out_dir=out, progress=False, workers=1, **kw)


def test_replaced_weights_with_an_updated_hash_are_recomputed(series, tmp_path, tiny_series_dir):
    out = tmp_path / "o"
    first = interp.analyze(series, ["neuron-stats"], options=_opts(out))
    assert first.ran == 8
    before = json.loads((out / "neuron-stats" / "tiny" / "seed0" / "step20.json").read_text())
    # another checkpoint's weights under this name, and the manifest updated to match: a legitimate replacement
    victim, donor = one_checkpoint(series, 0, 20), one_checkpoint(series, 1, 20)
    victim.write_bytes(donor.read_bytes())
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    edit_manifest(series, lambda m: [c.update(sha256=digest) for c in m["runs"][0]["checkpoints"]
                                     if c["seed"] == 0 and c["step"] == 20])
    again = interp.analyze(series, ["neuron-stats"], options=_opts(out))
    assert (again.ran, again.skipped) == (1, 7)
    after = json.loads((out / "neuron-stats" / "tiny" / "seed0" / "step20.json").read_text())
    assert after["provenance"]["checkpoints"][0]["sha256"] == digest
    assert after["scalars"] != before["scalars"]


def test_a_cache_in_another_storage_dtype_is_not_reused(series, tmp_path):
    out = tmp_path / "o"
    settings = {"task-allocation": {"check_neurons": 4, "controls": 0}}
    interp.analyze(series, ["task-allocation"], settings, options=_opts(out, storage_dtype="float16",
                                                                                  keep_cache=True))
    r = interp.analyze(series, ["task-allocation"], settings, options=_opts(out, storage_dtype="float32",
                                                                            keep_cache=True))
    assert r.ran == 8, "results from a float16 cache may not stand in for float32 ones"
    h5s = {p.name for p in (out / "cache").rglob("*.h5")}
    dtypes = set()
    import h5py

    for p in (out / "cache").rglob("*.h5"):
        with h5py.File(p) as f:
            dtypes.add(str(f["data"].dtype))
    assert dtypes == {"float16", "float32"} and h5s   # float32: that run's activations, and every gradient


def test_changed_prompts_recompute(series, tmp_path):
    out = tmp_path / "o"
    tokens = tmp_path / "t.npy"
    np.save(tokens, np.random.default_rng(0).integers(0, 20, size=(64, 3)))
    opts = _opts(out, prompts=PromptSource(tokens_file=tokens))
    assert interp.analyze(series, ["neuron-stats"], options=opts).ran == 8
    np.save(tokens, np.random.default_rng(1).integers(0, 20, size=(64, 3)))
    opts = _opts(out, prompts=PromptSource(tokens_file=tokens))    # same path, new content: a new key
    assert interp.analyze(series, ["neuron-stats"], options=opts).ran == 8
    assert interp.analyze(series, ["neuron-stats"], options=opts).ran == 0


def test_changed_settings_recompute(series, tmp_path):
    out = tmp_path / "o"
    assert interp.analyze(series, ["neuron-stats"], options=_opts(out)).ran == 8
    assert interp.analyze(series, ["neuron-stats"], {"neuron-stats": {"active_threshold": 0.5}},
                          _opts(out)).ran == 8
    summary = json.loads((out / "neuron-stats" / "summary.json").read_text())
    assert summary["units"] == 8


def test_results_of_an_older_method_recompute(series, tmp_path, monkeypatch):
    """A method change that alters the numbers bumps the analyzer's version: results saved before it are
    recomputed, not served (as universal-neurons' results were when its baseline moved to exact sums)."""
    from interp.analyzers.neuron_stats.analyzer import NeuronStats

    out = tmp_path / "o"
    assert interp.analyze(series, ["neuron-stats"], options=_opts(out)).ran == 8
    assert interp.analyze(series, ["neuron-stats"], options=_opts(out)).ran == 0
    monkeypatch.setattr(NeuronStats, "version", NeuronStats.version + 1)
    assert interp.analyze(series, ["neuron-stats"], options=_opts(out)).ran == 8
