"""Discovery reads every format in the same folder conventions (seed<S>/, -seed<S>, step<T>/ iter<T>/
checkpoint-<T>/ folders), and reports a bad file it read on its own (a run's config.json) with the file and field,
instead of raising mid-scan."""

from __future__ import annotations

import json

import pytest

from interp.checkpoints.discovery import scan
from tests.integration.test_formats_nanogpt import save_ckpt


@pytest.mark.parametrize("where,run,seed,step", [
    ("exp/seed1/step200/ckpt.pt", "exp", 1, 200),
    ("exp-seed2/iter300/ckpt.pt", "exp", 2, 300),
    ("exp/seed0/checkpoint-40/ckpt.pt", "exp", 0, 40),
    ("exp/seed3/ckpt_700.pt", "exp", 3, 700),          # the file name's step wins over iter_num (500)
    ("exp-seed4/ckpt.pt", "exp", 4, 500),               # no step in any name: iter_num
])
def test_nanogpt_checkpoints_follow_the_folder_conventions_of_every_format(tmp_path, where, run, seed, step):
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    save_ckpt(path, iter_num=500)
    found = scan(tmp_path, hash_files=False).found
    assert [(f.run, f.seed, f.step, f.format) for f in found] == [(run, seed, step, "nanogpt")]


def _native(tmp_path, config):
    d = tmp_path / "run" / "seed0"
    d.mkdir(parents=True)
    (d / "step000010.safetensors").write_bytes(b"not read by the scan")
    (tmp_path / "run" / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return scan(tmp_path, hash_files=False)


@pytest.mark.parametrize("config,words", [
    ("{not json", "run/config.json is not valid JSON"),
    ({"model": "gpt2"}, "run/config.json: field 'model' must be a mapping"),
    ({"model": {"n_layers": [1, 2]}}, "run/config.json: field 'model.n_layers' must be a plain value"),
    ({"model": {"n_layers": 1}, "mixture": {"d_vocab": 10, "tasks": [{"name": "a", "bogus": 1}]}},
     "run/config.json: field 'mixture' is not valid"),
    ({"model": {"n_layers": 1}, "processing": {"fold_ln": "maybe"}},
     "run/config.json: field 'processing' is not valid"),
])
def test_a_bad_run_config_is_reported_with_file_and_field(tmp_path, config, words):
    result = _native(tmp_path, config)
    assert not result.found
    (where, why), = result.unclassified
    assert where.endswith("step000010.safetensors") and words in why, why


def test_a_good_run_config_is_found(tmp_path):
    result = _native(tmp_path, {"model": {"n_layers": 1, "d_model": 8}, "processing": {"fold_ln": False}})
    assert [(f.run, f.seed, f.step) for f in result.found] == [("run", 0, 10)] and not result.unclassified
