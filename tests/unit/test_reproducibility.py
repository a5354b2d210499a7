"""What interp promises about repeating a computation (docs/reproducibility.md): bit-identical results on one
machine with one thread count; across thread counts, numbers within ``RTOL``/``ATOL``, a few flips in arrays that
hold a choice among floats (``TIES``), and sampled fits (``SAMPLED``) left out."""

from __future__ import annotations

import numpy as np
import pytest

import interp
from interp.analyzers import registry
from interp.results import ATOL, RTOL, Result, load_results


def _result(**arrays) -> Result:
    r = Result("x", "run/seed0/step0", {"a": 1})
    for k, v in arrays.items():
        r.add(k, np.asarray(v), tuple(f"d{i}" for i in range(np.ndim(v))))
    return r


class _Tied(Result):
    TIES = ("best",)
    SAMPLED = ("chain*",)


def test_differences_follow_the_stated_tolerance():
    a = _result(f=[1.0, 1e-9, 0.5], i=[1, 2, 3])
    within = _result(f=[1.0 + 0.5 * RTOL, 1e-9 + 0.5 * ATOL, 0.5], i=[1, 2, 3])
    beyond = _result(f=[1.0 + 3 * RTOL, 1e-9, 0.5], i=[1, 2, 3])
    assert a.differences(within) == [] and not a.equals(within)
    assert [d.split(":")[0] for d in a.differences(beyond)] == ["array f"]
    assert a.differences(_result(f=[1.0, 1e-9, 0.5], i=[1, 2, 4])) == ["array i: 1 of 3 entries differ"]
    a.scalars["s"] = {"x": [0.25, 3]}
    b = _result(f=[1.0, 1e-9, 0.5], i=[1, 2, 3])
    b.scalars["s"] = {"x": [0.25 * (1 + 0.5 * RTOL), 3]}
    assert a.differences(b) == []
    b.scalars["s"] = {"x": [0.25, 4]}
    assert a.differences(b) == ["scalars.s.x[1]: 3 vs 4"]


def test_ties_may_flip_in_a_few_entries_and_sampled_keys_are_left_out():
    def tied(best, chain):
        r = _Tied("x", "u", {})
        r.add("best", np.asarray(best), ("n",))
        r.add("chain_llcs", np.asarray(chain), ("n",))
        return r

    base = tied(np.arange(200), np.zeros(200))
    one_flip = tied(np.r_[1, np.arange(1, 200)], np.ones(200))       # 0.5% of the entries, another sample
    many = tied(np.r_[np.arange(1, 6), np.arange(5, 200)], np.zeros(200))
    assert base.differences(one_flip) == []
    assert base.differences(many) == ["array best: 5 of 200 entries differ"]


@pytest.mark.slow
def test_another_thread_count_keeps_the_promise(tiny_series_dir, tmp_path):
    import torch

    names = ["neuron-stats", "universal-neurons", "task-allocation", "stages"]
    outs = {}
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            outs[threads] = tmp_path / f"t{threads}"
            interp.analyze(tiny_series_dir, names, {"stages": {"n_draws": 8, "n_burnin": 2}},
                           interp.RunOptions(out_dir=outs[threads], progress=False, threads=threads))
    finally:
        torch.set_num_threads(before)
    for name in names:
        one = {r.unit_id: r for r in load_results(outs[1], name, result_class=registry.get(name).Result)}
        two = {r.unit_id: r for r in load_results(outs[2], name, result_class=registry.get(name).Result)}
        assert one.keys() == two.keys() and one
        for k in one:
            assert one[k].differences(two[k]) == [], (name, k)


@pytest.mark.parametrize("rtol", [RTOL])
def test_the_tolerance_is_what_the_docs_say(rtol):
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "reproducibility.md").read_text()
    assert f"{rtol:g}" in page and f"{ATOL:g}" in page
