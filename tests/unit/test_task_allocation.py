import numpy as np

from interp.activations.cache import CacheSettings
from interp.analyzers.base import Unit
from interp.analyzers.task_allocation.analyzer import TaskAllocation, jaccard, mass_set
from interp.checkpoints.loading import SLOT
from interp.prompts.source import PromptSource
from interp.runner.context import Context, ContextSettings
from tests.helpers import LA, drawn_pngs, planted  # noqa: F401


def test_planted_allocation_is_exact_and_ablation_confirms_it(tmp_path):
    ref, prompts = planted(tmp_path)
    ctx = Context(ContextSettings(CacheSettings(tmp_path / "cache"), "cpu", PromptSource(fixed=prompts)))
    analyzer = TaskAllocation()
    ctx.ensure(ref, analyzer.needs(ref))
    r = analyzer.run(Unit(analyzer.name, (ref,)), ctx)
    SLOT.clear()
    assert np.flatnonzero(r.neuron_set("A")[0]).tolist() == [0, 1]
    assert np.flatnonzero(r.neuron_set("B")[0]).tolist() == [2, 3]
    # analytic attribution: act 2, d loss / d act = p(label) - 1 with logits (4, 0 x 11)
    p = np.exp(4) / (np.exp(4) + 11)
    expected = np.zeros(8)
    expected[[0, 1]] = 2 * (1 - p)
    np.testing.assert_allclose(r.arrays["attribution"][0, 0], expected, rtol=1e-5, atol=1e-7)
    assert r.arrays["jaccard"][0, 1] == 0 and r.arrays["cosine"][0, 1] == 0
    assert r.scalars["neuron_share"] == {"A": 0.25, "B": 0.25}
    d = r.arrays["ablation_damage"]
    np.testing.assert_allclose(d[0, 0], np.log(12) + np.log(p), rtol=1e-5)   # A's loss goes to uniform
    assert d[0, 1] == 0 and d[1, 0] == 0 and d[1, 1] > 2
    assert r.scalars["ablation_rank_corr"]["A"] > 0.8


def test_mass_set_and_jaccard():
    a = np.array([5.0, 3.0, 1.0, 1.0, 0.0])
    assert mass_set(a, 0.5).tolist() == [True, False, False, False, False]
    assert mass_set(a, 0.9).tolist() == [True, True, True, False, False]  # 5 + 3 + 1 = 9 of 10
    assert mass_set(a, 0.95).tolist() == [True, True, True, True, False]
    assert not mass_set(np.zeros(3), 0.9).any()
    m = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], bool)
    np.testing.assert_allclose(jaccard(m), [[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 0]])




