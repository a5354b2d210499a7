"""The fidelity fixes of the analyzers against their papers, one test (or a few) per fix, each against an independent
computation: nulls by enumeration, batches by the trainer's own draw, gradients by torch autograd, the reference
code's circle count by a loop, per-prompt correlations by numpy. Each would fail on the code before the fix (the
overlap had no null, the batches were the first ones whatever the step, the task neurons were a fixed 8, g_r used
the test half, the headline was |mean|, a k = 1 SAE was called a subspace, likelihood-chain kept no per-prompt
numbers, the circle count centred the rows)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from interp.maths.nulls import expected_jaccard, stratified_sample


# 1. task-allocation: overlaps beside their hypergeometric chance level
@pytest.mark.parametrize("n,a,b", [(8, 5, 6), (8, 3, 4), (7, 1, 7), (6, 0, 3)])
def test_expected_jaccard_equals_enumeration_of_every_pair_of_sets(n, a, b):
    total, count = 0.0, 0
    for sa in itertools.combinations(range(n), a):
        for sb in itertools.combinations(range(n), b):
            union = len(set(sa) | set(sb))
            total += len(set(sa) & set(sb)) / union if union else 0.0
            count += 1
    assert expected_jaccard(n, a, b) == pytest.approx(total / count, abs=1e-12)
    if (n, a, b) == (8, 5, 6):
        assert expected_jaccard(n, a, b) == pytest.approx(0.53, abs=0.01)   # the "already 0.45-0.60"


def test_the_rank_check_samples_every_quartile_of_attribution_alike():
    scores = np.arange(400.0)
    idx = stratified_sample(scores, 40, np.random.default_rng(0))
    assert len(set(idx.tolist())) == 40
    quartile = (399 - idx) // 100                                      # 0: the top quarter of scores
    assert np.bincount(quartile, minlength=4).tolist() == [10, 10, 10, 10]


def test_task_allocation_reports_each_overlap_beside_its_chance_level(bundled, tmp_path):
    from interp.analyzers.base import Unit
    from interp.analyzers.task_allocation.analyzer import TaskAllocation

    ref = max(bundled.refs(run="narrow", seed=0), key=lambda r: r.step)
    a, ctx = TaskAllocation(TaskAllocation.config_from({"controls": 2, "check_neurons": 4})), _context(tmp_path)
    ctx.ensure(ref, a.needs(ref))
    r = a.run(Unit("task-allocation", (ref,)), ctx)
    core = r.arrays["core_set"].reshape(len(r.tasks), -1)
    n = core.shape[1]
    for i in range(len(r.tasks)):
        for j in range(len(r.tasks)):
            if i != j:
                want = expected_jaccard(n, int(core[i].sum()), int(core[j].sum()))
                assert r.arrays["core_jaccard_null"][i, j] == pytest.approx(want)
    assert r.arrays["ablation_damage_random"].shape == r.arrays["ablation_damage"].shape


# 2. grad-interference: the checkpoint's own batches, a share of the neurons, g_r over every instance, signed cosines
def test_the_split_uses_the_batches_the_trainer_drew_just_before_the_checkpoint(bundled):
    from interp.analyzers.grad_interference.analyzer import GradInterferenceConfig, training_batches
    from interp.toys.training import TrainConfig

    ref = max(bundled.refs(run="narrow", seed=2), key=lambda r: r.step)
    cfg = GradInterferenceConfig()
    batches, source = training_batches(ref, cfg, tasks=_tasks(ref), background=None, rare="rare")
    train = json.loads((ref.path.parent / "config.json").read_text())["train"]
    draw = TrainConfig(**{k: v for k, v in train.items() if k not in ("mixture", "language")},
                       mixture=ref.mixture_spec).batches()
    steps = range(ref.step - len(batches), ref.step)
    assert len(batches) >= cfg.n_batches and str(ref.step - 1) in source
    for batch, step in zip(batches, steps):
        np.testing.assert_array_equal(batch.tokens, draw(step).tokens)


def _tasks(ref):
    from interp.prompts.task_set import mixture_tasks

    return mixture_tasks(ref.mixture_spec, "all", ref.run)


@pytest.fixture(scope="module")
def narrow_grads(bundled, tmp_path_factory):
    from interp.analyzers.base import Unit
    from interp.analyzers.grad_interference.analyzer import GradInterference

    ref = max(bundled.refs(run="narrow", seed=0), key=lambda r: r.step)
    a = GradInterference(GradInterference.config_from({"check_first_order": False}))
    return ref, a.run(Unit(a.name, (ref,)), _context(tmp_path_factory.mktemp("gi")))


def test_task_neurons_are_a_share_of_the_layer_not_a_fixed_count(narrow_grads):
    ref, r = narrow_grads
    assert r.scalars["task_neurons_k"] == round(0.25 * ref.model["d_mlp"]) == 2   # was min(8, d_mlp): all of it


def test_task_gradients_use_every_instance_of_each_task(bundled, tmp_path):
    """|g_modadd| against torch autograd of the task's mean answer loss over all its instances, train and test (the
    old reference direction used the test half, whose gradient differs)."""
    import torch

    from interp.analyzers.base import Unit
    from interp.analyzers.grad_interference.analyzer import GradInterference
    from interp.checkpoints.loading import load_ref
    from interp.toys.tasks import build_tasks

    ref = max(bundled.refs(run="modadd", seed=0), key=lambda r: r.step)
    a = GradInterference(GradInterference.config_from({"check_first_order": False}))
    r = a.run(Unit(a.name, (ref,)), _context(tmp_path))
    task = build_tasks(ref.mixture_spec)["modadd"]
    model = load_ref(ref, "cpu")

    def norm(rows: np.ndarray) -> float:
        model.zero_grad()
        toks = torch.as_tensor(rows)
        logp = torch.log_softmax(model(toks)[:, -2].double(), -1)    # the answer is predicted one position before
        (-logp[torch.arange(len(toks)), toks[:, -1]].mean()).backward()
        return float(torch.cat([p.grad.reshape(-1).double() for p in model.parameters()
                                if p.grad is not None]).norm())

    want, test_half = norm(task.split("all")), norm(task.split("test"))
    assert r.scalars["grad_norm"]["modadd"] == pytest.approx(want, rel=1e-4)
    assert abs(test_half - want) > 1e-3 * want                         # the two directions are not the same


def test_the_headline_cosine_is_signed_with_its_standard_error(narrow_grads):
    _, r = narrow_grads
    nt = r.arrays["cos_nt"][np.isfinite(r.arrays["cos_nt"])]
    assert len(nt) >= 2
    assert r.scalars["rare_nt_cosine_mean"] == pytest.approx(float(np.mean(nt)))
    assert r.scalars["rare_nt_cosine_sem"] == pytest.approx(float(np.std(nt, ddof=1) / np.sqrt(len(nt))))
    assert r.scalars["rare_nt_abs_cosine_mean"] == pytest.approx(float(np.mean(np.abs(nt))))
    k = len(r.arrays["task_neurons"][0])
    # the floor: E|cos| of two independent random directions in the dimensions compared, by simulation
    dims = r.scalars["rare_nt_abs_cosine_floor"]
    rng = np.random.default_rng(0)
    d = round(2 / (np.pi * dims**2))
    u, v = rng.normal(size=(20000, d)), rng.normal(size=(20000, d))
    sim = np.abs((u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)).mean()
    assert dims == pytest.approx(sim, rel=0.05) and k >= 1


# 3. stages: an LLC that is not a measurement says so
@pytest.mark.parametrize("llc,levelled,diverged,words", [
    (12.0, 2, 0, ""), (-5.0, 2, 0, "negative"), (12.0, 1, 0, "1 of 2 chains did not level off"),
    (float("nan"), 0, 2, "no chain finished")])
def test_an_llc_is_flagged_unless_every_chain_levelled_off_at_a_minimum(llc, levelled, diverged, words):
    from interp.analyzers.stages.analyzer import unreliable

    why = unreliable(llc, levelled, 2, diverged)
    assert (why == "") if not words else (words in why)


# 4. sae-manifold: a k = 1 SAE cannot combine latents, so it never captures a subspace
def test_a_one_at_a_time_sae_with_few_latents_is_coarse_tiling_not_a_subspace():
    from interp.analyzers.sae_manifold.sae_fit import classify

    m = {"latents_on_manifold": 3, "subspace_capture": 0.97, "coverage": 0.95, "co_active": 1.0,
         "median_rf_width": 1.0, "centre_uniformity_p": 0.5}
    assert classify(m, 2) == "coarse tiling"
    assert classify({**m, "co_active": 2.0}, 2) == "subspace"


# 5. likelihood-chain: per-prompt numbers, and the correlations of single prompts
def test_per_prompt_metrics_are_saved_and_average_to_the_task_means(bundled, tmp_path):
    from interp.analyzers.base import Unit
    from interp.analyzers.likelihood_chain.analyzer import LikelihoodChain

    (ref,) = bundled.refs(run="narrow", seed=0, step=3000)
    r = LikelihoodChain().run(Unit("likelihood-chain", (ref,)), _context(tmp_path))
    for i, task in enumerate(r.scalars["tasks"]):
        rows = r.arrays["prompt_task"] == i
        for m in ("log_p_correct", "p_correct", "p_choice", "brier", "accuracy"):
            assert r.arrays[f"prompt_{m}"][rows].mean() == pytest.approx(r.scalars[f"{task}/{m}"], rel=1e-9)


def test_per_sample_correlations_equal_numpy_per_prompt():
    from interp.analyzers.likelihood_chain.summary import per_sample_correlations
    from interp.results import Result

    rng = np.random.default_rng(5)
    steps, n = [10, 100, 1000, 3000], 6
    y = rng.normal(size=(len(steps), n))
    y[:, 5] = 1.0                                                       # a prompt that never changes: no r
    results = []
    for i, st in enumerate(steps):
        r = Result("likelihood-chain", f"run/seed0/step{st}", {"step_zero": "exclude"},
                   provenance={"checkpoints": [{"run": "run", "seed": 0, "step": st}]})
        r.scalars["tasks"] = ["t"]
        r.add("prompt_task", np.zeros(n, dtype=int), ("prompt",))
        for m in ("log_p_correct", "p_correct", "p_choice", "brier", "accuracy"):
            r.add(f"prompt_{m}", y[i], ("prompt",))
        results.append(r)
    got = per_sample_correlations(results, "exclude")["run"]["t"]["accuracy"]
    x = np.log10(steps)
    want = [np.corrcoef(x, y[:, j])[0, 1] for j in range(5)]
    assert got["n"] == 5 and got["n_prompts"] == 6
    assert got["median"] == pytest.approx(float(np.median(want)))
    assert got["q25"] == pytest.approx(float(np.percentile(want, 25)))


# 7. fourier-competition: the reference code's count beside ours
def test_the_reference_circle_count_follows_its_rule_by_a_loop():
    from interp.maths.manifolds import reference_circles

    p, d = 23, 12
    rng = np.random.default_rng(3)
    c = np.arange(p)
    w = 0.05 * rng.normal(size=(p, d)) + 3.0                            # a large mean: the DC term dominates
    w[:, 0] += np.cos(2 * np.pi * 4 * c / p)
    w[:, 1] += np.sin(2 * np.pi * 4 * c / p)
    signal = [np.sqrt(sum(abs(sum(w[t, j] * np.exp(-2j * np.pi * k * t / p) for t in range(p))) ** 2
                          for j in range(d))) for k in range(p)]
    want = sum(s > 2 * np.mean(signal) for s in signal) // 2
    assert reference_circles(w) == want


def _context(cache_dir):
    from interp.activations.cache import CacheSettings
    from interp.prompts.source import PromptSource
    from interp.runner.context import Context, ContextSettings

    return Context(ContextSettings(CacheSettings(cache_dir), "cpu", PromptSource(n_background=64)))
