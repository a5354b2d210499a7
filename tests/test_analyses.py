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


def test_rank_k_target_from_small_init_has_k_drops_and_longer_plateaus(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "analyses" / "stages_rank_k.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    rows = list(csv.DictReader(open(tmp_path / "drops.csv")))
    by_init = {}
    for r in rows:
        by_init.setdefault(float(r["init"]), []).append(float(r["onset_step"]))
    small = sorted((i for i in by_init if i <= 1e-3), reverse=True)          # 1e-3, 1e-4, 1e-5
    assert small and all(len(by_init[i]) == 3 for i in small)                 # rank 3: three drops
    firsts = [by_init[i][0] for i in small]
    assert all(a < b for a, b in zip(firsts, firsts[1:]))                     # smaller init, longer first plateau
    assert (tmp_path / "rank_k_loss.png").read_bytes()[:4] == b"\x89PNG"
