"""The CUDA path: every analyzer on the bundled series with ``device='cuda'`` gives the CPU's numbers (within the
float32 differences of another device's kernels). Skipped where there is no GPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import interp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def _scalars(out, name):
    return {p.relative_to(out / name).as_posix(): json.loads(p.read_text())["scalars"]
            for p in (out / name).rglob("step*.json")}


def _close(a, b, where):
    if isinstance(a, dict):
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert np.isclose(a, b, rtol=2e-3, atol=2e-3, equal_nan=True), (where, a, b)
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("name", ["neuron-stats", "universal-neurons", "task-allocation", "grad-interference",
                                  "fourier-competition", "stages"])
def test_cuda_matches_cpu(name, tmp_path):
    runs = ("modadd",) if name == "fourier-competition" else ("narrow",)
    settings = {"stages": {"llc": False}} if name == "stages" else {}   # SGLD noise: another generator on CUDA
    cpu = interp.analyze(None, [name], settings, interp.RunOptions(out_dir=tmp_path / "cpu", device="cpu",
                                                                   runs=runs, progress=False))
    gpu = interp.analyze(None, [name], settings, interp.RunOptions(out_dir=tmp_path / "gpu", device="cuda",
                                                                   runs=runs, progress=False))
    assert cpu.ran == gpu.ran > 0
    a, b = _scalars(tmp_path / "cpu", name), _scalars(tmp_path / "gpu", name)
    assert a.keys() == b.keys()
    for unit in a:
        _close(a[unit], b[unit], f"{name}/{unit}")


def test_cuda_cache_in_half_precision_with_float64_statistics(tmp_path):
    out = tmp_path / "bf16"
    report = interp.analyze(None, ["neuron-stats", "universal-neurons"], options=interp.RunOptions(
        out_dir=out, device="cuda", storage_dtype="bfloat16", runs=("narrow",), progress=False))
    assert report.ran > 0
    unit = json.loads(next((out / "neuron-stats").rglob("step*.json")).read_text())
    assert np.isfinite(unit["scalars"]["median_kurtosis"])
