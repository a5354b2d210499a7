
import numpy as np
import pytest

from interp.activations.cache import CacheSettings
from interp.analyzers.base import Unit
from interp.analyzers.grad_interference.analyzer import GradInterference, GradInterferenceConfig
from interp.checkpoints.loading import SLOT
from interp.maths.stats import cosine_matrix
from interp.prompts.prompt_set import PromptSet
from interp.prompts.source import PromptSource
from interp.runner.context import Context, ContextSettings
from tests.helpers import planted

# every parameter that adds a constant to the residual stream or the logits sees every task's gradient, by
# construction; the planted tasks share nothing else
SHARED = ("pos_embed.W_pos", "blocks.0.attn.b_O", "blocks.0.mlp.b_out", "unembed.b_U")


def run_on(ref, prompts, tmp_path, **cfg):
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu", PromptSource(fixed=prompts)))
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
    ctx = Context(ContextSettings(CacheSettings(tmp_path), "cpu", PromptSource(n_background=256)))
    a = GradInterference(GradInterferenceConfig(n_batches=2))
    for ref in (refs[0], refs[-1]):
        r = a.run(Unit(a.name, (ref,)), ctx)
        assert r.scalars["first_order_rel_error"] < 0.05
        pred, act = r.arrays["interference"], r.arrays["interference_actual"]
        assert np.all(np.diag(act) < 0)   # a step on a task lowers its own loss
        np.testing.assert_allclose(np.diag(pred), np.diag(act), rtol=0.05)
    SLOT.clear()




def test_step_weighted_mean_is_the_average_over_training_steps():
    from interp.analyzers.grad_interference.summary import step_weighted_mean

    steps, values = [0, 1, 4, 14, 55, 208, 790, 3000], [0.9, 0.8, 0.7, 0.3, 0.1, 0.05, 0.02, 0.01]
    midpoints = np.arange(3000) + 0.5   # the midpoint rule is exact on each unit step of a piecewise-linear curve
    assert step_weighted_mean(steps, values) == pytest.approx(np.interp(midpoints, steps, values).mean(), rel=1e-9)
    assert step_weighted_mean([5, 0], [1.0, 3.0]) == pytest.approx(2.0)   # order does not matter
    assert step_weighted_mean([7], [0.4]) == pytest.approx(0.4)




