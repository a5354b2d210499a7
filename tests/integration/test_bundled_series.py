"""Regression: the bundled series shows the phenomena it was made for, measured from the files themselves."""

import pytest

from interp.checkpoints.loading import load_ref
from interp.toys.training import evaluate


def last_step(series, run):
    refs = series.refs(run=run)
    step = max(r.step for r in refs)
    return [r for r in refs if r.step == step]


@pytest.fixture(scope="module")
def final_accuracy(bundled):
    out = {}
    for run in ("narrow", "wide", "modadd"):
        for ref in last_step(bundled, run):
            model = load_ref(ref, device="cpu")
            out[(run, ref.seed)] = {t: m["accuracy"] for t, m in evaluate(model, ref.mixture_spec).items()}
    return out


def test_shape_of_the_bundle(bundled):
    for run in ("narrow", "wide", "modadd"):
        refs = bundled.refs(run=run)
        seeds = {r.seed for r in refs}
        assert len(seeds) >= 3
        for s in seeds:
            assert len({r.step for r in refs if r.seed == s}) >= 6
    widths = {run: bundled.run(run).model["d_mlp"] for run in ("narrow", "wide")}
    assert widths["narrow"] < widths["wide"]
    universal = bundled.refs(run="universal")
    assert len({r.seed for r in universal}) >= 3 and bundled.run("universal").model["n_layers"] == 2
    total = sum(r.size for r in bundled.refs())
    assert total <= 16e6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_narrow_model_loses_the_rare_task_and_the_wide_one_learns_it(final_accuracy, seed):
    narrow, wide = final_accuracy[("narrow", seed)], final_accuracy[("wide", seed)]
    assert narrow["common"] >= 0.9 and wide["common"] >= 0.9
    assert narrow["rare"] <= 0.6
    assert wide["rare"] >= 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_modular_addition_groks(final_accuracy, bundled, seed):
    assert final_accuracy[("modadd", seed)]["modadd"] >= 0.95
    first = min(bundled.refs(run="modadd", seed=seed), key=lambda r: r.step)
    assert first.metrics["modadd/accuracy"] < 0.2  # it starts at chance: the series spans the transition


def test_manifest_metrics_agree_with_the_files(final_accuracy, bundled):
    for (run, seed), acc in final_accuracy.items():
        ref = last_step(bundled, run)[seed]
        for task, a in acc.items():
            assert abs(ref.metrics[f"{task}/accuracy"] - a) <= 0.02  # fp16 storage moves a few predictions at most
