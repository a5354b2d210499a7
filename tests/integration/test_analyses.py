"""The analyses scripts run end to end on reduced settings (their full runs are by hand)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # seconds to minutes each: left out of the edit-test loop

ROOT = Path(__file__).resolve().parents[2]


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


def test_interference_sweep_cell_table_against_numpy():
    """The sweep's per-cell aggregates of analyses/interference_vs_width.py against a float64 numpy recomputation
    on synthetic per-checkpoint rows (no training: the sweep itself is run by hand)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "analyses"))
    import interference_vs_width as m

    rng = np.random.default_rng(0)
    steps, seeds, keys = [0, 3, 10, 30, 100, 400, 800], [0, 1, 2], ("cos_nt", "cos_nt_batch_std", "ratio",
                                                                        "grad_norm_common", "grad_norm_rare")
    units = [dict(run="dm64-mlp8-f0.05", d_model=64, d_mlp=8, rare_frequency=0.05, seed=s, step=st,
                  rare_accuracy=0.1 * s + st / 1000, cos_common_rare_all_params=rng.normal(), top_k_overlap=1.0,
                  neuron_cos_common_rare=rng.normal(), random_cos_std=0.03,
                  **{k: float(rng.uniform(0.1, 1.0) * (1 if k != "cos_nt" else rng.choice([-1, 1]))) for k in keys})
             for s in seeds for st in steps]
    (row,) = m.cell_table(units, n_batches=16, dims={"dm64-mlp8-f0.05": dict(dim90_in=12.0, dim90_out=17.0)})
    v = {k: np.array([[u[k] for u in units if u["seed"] == s] for s in seeds]) for k in keys}   # [seed, step]
    late = np.array(steps) >= 100
    per_seed = v["cos_nt"][:, late].mean(1)
    assert np.allclose(row["cos_nt_late_signed"], (per_seed.mean(), per_seed.std()))
    assert np.isclose(row["cos_nt_late_abs"][0], np.abs(v["cos_nt"][:, late]).mean())
    floor = np.sqrt(2 / np.pi) * v["cos_nt_batch_std"][:, late] / 4
    assert np.isclose(row["cos_nt_late_noise_abs"][0], floor.mean())
    pooled = v["cos_nt"][:, late].ravel()
    assert np.isclose(row["cos_nt_late_z"][0], pooled.mean() / pooled.std(ddof=1) * np.sqrt(pooled.size))
    sw = [sum((r[1:] + r[:-1]) / 2 * np.diff(steps)) / steps[-1] for r in v["ratio"]]
    assert np.allclose(row["ratio_step_weighted"], (np.mean(sw), np.std(sw)))
    assert np.isclose(row["norm_ratio_late"][0], (v["grad_norm_common"] / v["grad_norm_rare"])[:, late].mean())
    assert np.isclose(row["cos_nt_early_abs"][0], np.abs(v["cos_nt"][:, 1:4]).mean())
    assert row["rare_accuracy_final"][0] == np.mean([0.1 * s + 0.8 for s in seeds]) and row["seeds"] == 3
