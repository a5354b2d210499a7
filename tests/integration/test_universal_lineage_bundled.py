"""universal-lineage and the roles-by-universality table on the bundled series (the full bundled analysis, run once
per session): what the universal family shows, checked against universal-neurons' own results and recounted from
the saved arrays."""

import numpy as np
import pytest

from interp.api import load_result
from interp.results import load_results
from tests.helpers import drawn_pngs


@pytest.fixture(scope="module")
def lineage(bundled_results):
    return load_result(bundled_results.out_dir / "universal-lineage" / "universal" / "series.json")


def test_the_fraction_over_steps_is_universal_neurons_own_and_the_interval_brackets_it(bundled_results, lineage):
    uni = {r.step: r for r in load_results(bundled_results.out_dir, "universal-neurons") if r.run == "universal"}
    assert lineage.steps == sorted(uni)
    for i, step in enumerate(lineage.steps):
        np.testing.assert_allclose(lineage.arrays["universal_fraction"][i],
                                   uni[step].scalars["universal_fraction_per_layer"])
    frac, lo, hi = (lineage.arrays[k] for k in ("universal_fraction", "universal_fraction_lo",
                                                "universal_fraction_hi"))
    assert (lo <= frac + 1e-12).all() and (frac <= hi + 1e-12).all()
    assert lineage.scalars["max_corr_gap"] < 1e-4     # the lineage pass and universal-neurons' read the same numbers


def test_universal_neurons_lock_in_during_training_and_the_seeds_agree_on_when(lineage):
    steps, lock = lineage.steps, lineage.arrays["lock_in_index"]
    uni = lineage.arrays["universal"][-1]
    assert uni.sum() == lineage.scalars["n_universal"] > 50
    settled = lock[uni]
    assert (settled >= 1).all()                       # none is universal at initialisation
    # counts per layer and step index recounted from the arrays
    for layer, row in enumerate(lineage.scalars["lock_in_counts"]):
        want = np.bincount(lock[:, layer][uni[:, layer] & (lock[:, layer] >= 0)], minlength=len(steps))
        assert row == want.tolist()
    assert lineage.scalars["mutual_pairs"] > 20 and lineage.scalars["within_one_share"] > 0.9


def test_runs_without_universal_neurons_run_no_lineage_pass(bundled_results):
    for r in load_results(bundled_results.out_dir, "universal-lineage"):
        assert r.scalars["passes_run"] == bool(r.arrays["universal"].any()), r.run
    assert {r.run for r in load_results(bundled_results.out_dir, "universal-lineage")
            if r.scalars["passes_run"]} == {"universal"}


def test_universal_neurons_are_over_represented_among_suppression_neurons(bundled_results):
    """The paper's direction (Gurnee et al., arXiv 2401.12181), with its null: Fisher's exact test, recomputed here
    from the saved role flags and universal masks."""
    from scipy.stats import fisher_exact

    table = bundled_results.summaries["universal-neurons"]["roles_by_universality"]["universal"]["all layers"]
    res = max((r for r in load_results(bundled_results.out_dir, "universal-neurons") if r.run == "universal"),
              key=lambda r: r.step)
    roles = {r.seed: r for r in load_results(bundled_results.out_dir, "neuron-roles")
             if r.run == "universal" and r.step == res.step}
    flag = np.stack([roles[s].arrays["is_suppression"] for s in res.scalars["seeds"]])
    uni = res.arrays["universal"]
    a, b = int((flag & uni).sum()), int((flag & ~uni).sum())
    cell = table["suppression"]
    assert (cell["universal"], cell["other"]) == (a, b)
    p = fisher_exact([[a, uni.sum() - a], [b, (~uni).sum() - b]])[1]
    assert cell["p_value"] == pytest.approx(p)
    assert cell["universal_share"] > 2 * cell["other_share"] and p < 0.01


def test_lineage_figures_draw(bundled_results):
    pngs = drawn_pngs(bundled_results, "universal-lineage")
    assert {p.stem for p in pngs} == {"lock_in", "fraction_interval", "trajectories"}
    assert all(p.stat().st_size > 10_000 for p in pngs)
