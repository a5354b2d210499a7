"""Shared fixtures (helpers that are not fixtures live in ``tests/helpers.py``).

Tiers: ``unit/`` builds its own tiny inputs with known answers and never runs the bundled analysis (seconds);
``integration/`` uses the checkpoints bundled with the package (``interp/data/bundled``, the regression set), the full
bundled analysis (run once per session), real checkpoint formats, the report and Dask; ``faults/`` feeds interp bad
inputs and broken files. Tests marked ``slow`` are left out of the edit-test loop (``pytest -m "not slow"``); every
test that needs the full bundled analysis is slow.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from tests.helpers import tiny_train_config  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def bundled():
    from interp.api import load_series

    return load_series(None)


@pytest.fixture(scope="session")
def wide_ref(bundled):
    """The last checkpoint of the wide competition model, seed 0."""
    return max(bundled.refs(run="wide", seed=0), key=lambda r: r.step)


@pytest.fixture(scope="session")
def narrow_ref(bundled):
    return max(bundled.refs(run="narrow", seed=0), key=lambda r: r.step)


@pytest.fixture(scope="session")
def tiny_series_dir(tmp_path_factory):
    """A freshly trained tiny series: run 'tiny', seeds 0 and 1, 4 steps each (a few seconds)."""
    from interp.toys.training import train

    out = tmp_path_factory.mktemp("tiny_series")
    for seed in (0, 1):
        train(tiny_train_config(seed=seed), out, progress=False)
    return out


@pytest.fixture
def series(tiny_series_dir, tmp_path):
    """A private copy of the tiny series (run 'tiny', seeds 0-1, steps 0, 1, 4, 20) that a test may damage."""
    import shutil

    d = tmp_path / "series"
    shutil.copytree(tiny_series_dir, d)
    return d


@pytest.fixture
def outside(tmp_path):
    """A folder outside both the series and the output; fault tests assert it stays empty."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def bundled_results(tmp_path_factory):
    """``interp analyze`` with no arguments (every registered analyzer on the bundled series), run once per session."""
    import interp

    out = tmp_path_factory.mktemp("interp-results")
    report = interp.analyze(options=interp.RunOptions(out_dir=out, progress=False))
    return report






def pytest_collection_modifyitems(config, items):
    """A test that needs the full bundled analysis (the ``bundled_results`` fixture, a few minutes) is slow."""
    for item in items:
        if "bundled_results" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
