"""A run killed with SIGKILL part-way, then rerun, ends identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from interp.results import load_results

pytestmark = pytest.mark.slow   # seconds to minutes each: left out of the edit-test loop


def _cmd(series_dir, out):
    return [sys.executable, "-m", "interp.cli", "analyze", "--checkpoint-dir", str(series_dir), "--out", str(out),
            "--analyzer", "neuron-stats", "--quiet", "--device", "cpu"]


def test_sigkill_then_rerun_equals_uninterrupted(tiny_series_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(_cmd(tiny_series_dir, clean), check=True, env=env, capture_output=True)
    expected = {r.unit_id: r for r in load_results(clean, "neuron-stats")}
    assert len(expected) == 8

    proc = subprocess.Popen(_cmd(tiny_series_dir, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "neuron-stats").rglob("step*.json")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = load_results(killed, "neuron-stats")  # never reads a torn file as complete
    assert 1 <= len(partial) < 8, f"kill landed at {len(partial)} of 8 units"
    for r in partial:
        assert r.equals(expected[r.unit_id])

    out = subprocess.run(_cmd(tiny_series_dir, killed), check=True, env=env, capture_output=True, text=True)
    assert f"{8 - len(partial)} units run, {len(partial)} already complete" in out.stdout
    resumed = {r.unit_id: r for r in load_results(killed, "neuron-stats")}
    assert resumed.keys() == expected.keys()
    assert all(resumed[k].equals(expected[k]) for k in expected)
