"""The grad-interference analyzer on the bundled series (the full bundled analysis, run once per session)."""

import numpy as np
import pytest


def test_bundled_summary_carries_the_batch_split(bundled_results):
    summary = bundled_results.summaries["grad-interference"]
    for run in ("narrow", "wide"):
        for row in summary["per_run"][run].values():
            assert len(row["rare_nt_cosine_mean"]["per_seed"]) == 3
            assert len(row["rare_nt_cosine_sem"]["per_seed"]) == 3
            assert all(-1 <= v <= 1 for v in row["rare_nt_cosine_mean"]["per_seed"].values())
    assert "rare_nt_cosine_mean" not in summary["per_run"]["modadd"][max(summary["per_run"]["modadd"], key=int)]


def test_rare_interference_ratio_from_cosines_and_gradient_norms(bundled_results):
    """|I[j, r]| / |I[r, r]| = |cos(g_j, g_r)| |g_j| / |g_r|: the scalar against the unit's own matrices."""
    from interp.results import load_results

    results = [r for r in load_results(bundled_results.out_dir, "grad-interference")
               if "rare_task_interference_ratio" in r.scalars]
    assert results
    for r in results:
        t, norms, cos = list(r.scalars["tasks"]), r.scalars["grad_norm"], r.arrays["cosine"]
        rare = t.index(r.scalars["rare_task"])
        expect = max(abs(cos[j, rare]) * norms[t[j]] / norms[t[rare]] for j in range(len(t))
                     if j != rare and t[j] != "background")
        assert r.scalars["rare_task_interference_ratio"] == pytest.approx(expect, rel=1e-6)


def test_wide_models_rare_task_is_interfered_with_less(bundled_results):
    """After the common task saturates, the wide model's common-task gradient (and so its effect on the rare loss)
    vanishes; the narrow model's keeps moving the rare loss. Step-weighted over training, per seed."""
    from interp.analyzers.grad_interference.summary import step_weighted_mean

    per_run = bundled_results.summaries["grad-interference"]["per_run"]

    def weighted(run):
        steps = sorted(per_run[run], key=int)
        return {seed: step_weighted_mean([int(s) for s in steps],
                                         [per_run[run][s]["rare_task_interference_ratio"]["per_seed"][seed]
                                          for s in steps])
                for seed in per_run[run][steps[0]]["rare_task_interference_ratio"]["per_seed"]}

    narrow, wide = weighted("narrow"), weighted("wide")
    assert set(narrow) == set(wide) == {"0", "1", "2"}
    assert all(narrow[s] > wide[s] for s in narrow), (narrow, wide)
    assert np.mean(list(narrow.values())) > 2 * np.mean(list(wide.values())), (narrow, wide)
