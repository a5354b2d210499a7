"""The analyses scripts run end to end on reduced settings (their full runs are by hand)."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_competition_for_neurons_smoke(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "analyses" / "competition_for_neurons.py"), "--smoke", "--out",
                    str(tmp_path), "--jobs", "1"], check=True, capture_output=True)
    grid = list(csv.DictReader(open(tmp_path / "grid.csv")))
    matched = list(csv.DictReader(open(tmp_path / "matched.csv")))
    assert len(grid) == 4 and len(matched) == 2
    assert {r["injection_gap"] for r in matched} == {"1", "5"}
    assert all(0 <= float(r["rare_accuracy"]) <= 1 for r in grid)
    for png in ("rare_accuracy_heatmap.png", "matched_injection.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_fourier_competition_smoke(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "analyses" / "fourier_competition.py"), "--out", str(tmp_path),
                    "--dims", "4", "8", "--seeds", "0", "--steps", "30", "--fit-steps", "10", "--jobs", "1"],
                   check=True, capture_output=True)
    runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
    by_width = list(csv.DictReader(open(tmp_path / "by_width.csv")))
    assert [r["d"] for r in runs] == ["4", "8"] and [r["d"] for r in by_width] == ["4", "8"]
    assert all(0 <= int(r["circles"]) <= 29 and len(r["survivors"].split()) == int(r["circles"]) for r in runs)
    for png in ("circles_vs_width.png", "trajectories.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
