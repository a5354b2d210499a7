"""``interp plan`` estimates a run's activation bytes before it runs, within 10% of what the run writes; a disk
budget below the estimate refuses the run before anything is computed; the run removes its own cache unless kept."""

from __future__ import annotations

import pytest

import interp
from interp.api import plan_run
from interp.errors import ConfigError
from tests.helpers import cli

SETTINGS = {"task-allocation": {"check_neurons": 4, "controls": 0}, "stages": {"llc": False}}
NAMES = ["task-allocation", "neuron-stats", "stages"]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_the_estimate_of_bytes_written_is_within_ten_percent(tiny_series_dir, tmp_path, dtype):
    opts = interp.RunOptions(out_dir=tmp_path / "o", progress=False, storage_dtype=dtype, keep_cache=True)
    _, est = plan_run(tiny_series_dir, NAMES, SETTINGS, opts)
    report = interp.analyze(tiny_series_dir, NAMES, SETTINGS, opts)
    written = sum(p.stat().st_size for p in (tmp_path / "o" / "cache").rglob("*.h5"))
    assert report.cache_kept and written > 0
    assert est["TOTAL"].disk_bytes == pytest.approx(written, rel=0.10)
    assert est["neuron-stats"].disk_bytes == 0 and est["stages"].disk_bytes == 0   # streamed, never cached
    assert est["task-allocation"].units == 8


def test_a_disk_budget_refuses_the_run_before_it_starts(tiny_series_dir, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ConfigError, match="more than --disk-budget"):
        interp.analyze(tiny_series_dir, ["task-allocation"], {"task-allocation": SETTINGS["task-allocation"]},
                       interp.RunOptions(out_dir=out, progress=False, disk_budget_gb=1e-9))
    assert not (out / "task-allocation").exists()


def test_the_cache_is_removed_unless_kept_and_the_command_says_which(tiny_series_dir, tmp_path):
    r = cli(["analyze", "--checkpoint-dir", tiny_series_dir, "-a", "task-allocation", "--set",
             "check_neurons=4", "--out", tmp_path / "o", "-q"])
    assert r.exit_code == 0, r.output
    assert "written and removed at the end (--keep-cache keeps it)" in r.stdout
    assert not list((tmp_path / "o" / "cache").rglob("*.h5"))
    assert (tmp_path / "o" / "cache" / "verified-hashes.json").is_file()   # the memo of checked hashes stays
    r = cli(["plan", "--checkpoint-dir", tiny_series_dir, "-a", "task-allocation", "--out", tmp_path / "p"])
    assert r.exit_code == 0 and "task-allocation" in r.stdout and "nothing was computed" in r.stdout
    assert not (tmp_path / "p" / "task-allocation").exists()
