from dataclasses import replace

import numpy as np
import pytest

from conftest import planted
from interp.activations.cache import ActivationCache, CacheSettings
from interp.analyzers.base import Unit
from interp.analyzers.grad_interference import GradInterference, GradInterferenceConfig, cosine_matrix
from interp.context import Context, PromptSource
from interp.loading import SLOT
from interp.tasks import PromptSet

# every parameter that adds a constant to the residual stream or the logits sees every task's gradient, by
# construction; the planted tasks share nothing else
SHARED = ("pos_embed.W_pos", "blocks.0.attn.b_O", "blocks.0.mlp.b_out", "unembed.b_U")


def run_on(ref, prompts, tmp_path, **cfg):
    ctx = Context(ActivationCache(CacheSettings(tmp_path / "cache")), "cpu", PromptSource(fixed=prompts))
    a = GradInterference(GradInterferenceConfig(**cfg))
    r = a.run(Unit(a.name, (ref,)), ctx)
    SLOT.clear()
    return r


def test_tasks_on_disjoint_parameters_have_cosine_exactly_zero(tmp_path):
    ref, prompts = planted(tmp_path)
    r = run_on(ref, prompts, tmp_path, exclude=SHARED)
    a, b = r.tasks.index("A"), r.tasks.index("B")
    assert r.arrays["cosine"][a, b] == 0.0 and r.arrays["interference"][a, b] == 0.0
    assert r.arrays["cosine"][a, a] == pytest.approx(1.0)
    assert set(r.arrays["task_neurons"][a][:2]) == {0, 1} and set(r.arrays["task_neurons"][b][:2]) == {2, 3}
    with pytest.raises(Exception, match="unknown parameters"):
        run_on(ref, prompts, tmp_path, exclude=("nope",))


def test_a_duplicated_task_has_cosine_one(tmp_path):
    ref, prompts = planted(tmp_path)
    a = prompts.subset(prompts.task_id == 0)
    dup = PromptSet(np.concatenate([a.tokens, a.tokens]), np.array([0] * len(a) + [1] * len(a)),
                    np.concatenate([a.loss_mask, a.loss_mask]), ("A", "A_copy"))
    r = run_on(ref, dup, tmp_path)
    np.testing.assert_allclose(r.arrays["cosine"], np.ones((2, 2)), atol=1e-12)


def test_cosine_matrix_against_brute_force():
    g = np.random.default_rng(0).normal(size=(4, 50))
    g[3] = 0
    m = cosine_matrix(g)
    for i in range(3):
        for j in range(3):
            assert m[i, j] == pytest.approx(g[i] @ g[j] / np.linalg.norm(g[i]) / np.linalg.norm(g[j]))
    assert (m[3] == 0).all()


@pytest.mark.parametrize("run", ["narrow", "wide"])
def test_first_order_prediction_matches_a_real_sgd_step(bundled, run, tmp_path):
    refs = sorted(bundled.refs(run=run, seed=0), key=lambda r: r.step)
    ctx = Context(ActivationCache(CacheSettings(tmp_path)), "cpu", PromptSource(n_background=256))
    a = GradInterference(GradInterferenceConfig(n_batches=1))
    for ref in (refs[0], refs[-1]):
        r = a.run(Unit(a.name, (ref,)), ctx)
        assert r.scalars["first_order_rel_error"] < 0.05
        pred, act = r.arrays["interference"], r.arrays["interference_actual"]
        assert np.all(np.diag(act) < 0)   # a step on a task lowers its own loss
        np.testing.assert_allclose(np.diag(pred), np.diag(act), rtol=0.05)
    SLOT.clear()


def test_bundled_summary_carries_the_batch_split(bundled_results):
    summary = bundled_results.summaries["grad-interference"]
    for run in ("narrow", "wide"):
        for step, row in summary["per_run"][run].items():
            assert len(row["rare_nt_cosine_mean"]["per_seed"]) == 3
            assert len(row["rare_nt_cosine_std"]["per_seed"]) == 3
            assert all(-1 <= v <= 1 for v in row["rare_nt_cosine_mean"]["per_seed"].values())
    assert "rare_nt_cosine_mean" not in summary["per_run"]["modadd"][max(summary["per_run"]["modadd"], key=int)]
