"""Family 5: options are validated where they are declared, before anything is computed or written."""

import pytest

import interp
from interp.errors import ConfigError
from tests.helpers import cli, no_traceback


@pytest.mark.parametrize("analyzer, key, value, valid", [
    ("universal-neurons", "chunk_tokens", -5, ">= 1"),
    ("task-allocation", "chunk_tokens", 0, ">= 1"),
    ("task-allocation", "mass", 2, "<= 1"),
    ("task-allocation", "mass", float("nan"), "NaN"),
    ("task-allocation", "top_k", -1, ">= 0"),
    ("task-allocation", "check_neurons", 0, ">= 4"),
    ("universal-neurons", "threshold", -0.1, ">= 0"),
    ("stages", "n_chains", 0, ">= 1"),
    ("grad-interference", "lr", 0.0, "> 0"),
])
def test_bad_options_fail_before_compute(series, tmp_path, analyzer, key, value, valid):
    out = tmp_path / "o"
    with pytest.raises(ConfigError) as e:
        interp.analyze(series, [analyzer], {analyzer: {key: value}},
                       interp.RunOptions(out_dir=out, progress=False))
    assert f"analyzer {analyzer!r} option {key}" in str(e.value) and valid in str(e.value)
    assert not out.exists()


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("storage_dtype", "int8"), ("device", "tpu")])
def test_bad_run_options(field, value):
    with pytest.raises(ConfigError, match=field if field != "device" else "device"):
        interp.RunOptions(**{field: value}) if field != "device" else interp.analyze(
            None, ["neuron-stats"], options=interp.RunOptions(device=value, progress=False))


def test_cli_bad_option_exits_2_without_traceback(series, tmp_path):
    r = cli(["analyze", "--checkpoint-dir", series, "--out", tmp_path / "o", "-a", "task-allocation",
             "--set", "mass=nan", "-q"])
    assert r.exit_code == 2 and "mass" in r.stderr
    no_traceback(r)
    r = cli(["analyze", "--checkpoint-dir", series, "--out", tmp_path / "o", "--batch-size", "0", "-q"])
    assert r.exit_code == 2 and "batch_size" in r.stderr
    no_traceback(r)
    assert not (tmp_path / "o").exists()
