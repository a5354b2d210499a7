"""Incidental polysemanticity (arXiv 2312.03096): the toy autoencoder (``interp.toys.incidental``), its n^2/(4m) count,
and the ``incidental-polysemanticity`` analyzer on bundled checkpoints, each against an independent computation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from interp.toys.incidental import (
    ToyConfig,
    count_polysemantic,
    features_per_neuron,
    gradient,
    predicted_count,
    train_toy,
)

ROOT = Path(__file__).resolve().parents[2]


def test_count_against_a_brute_force_loop():
    import torch

    rng = np.random.default_rng(0)
    w = rng.choice([-1, 1], size=(3, 12, 20)) * rng.uniform(0, 1.4, size=(3, 12, 20))   # many entries in the band
    w[0, :, 5] = [1.2, -0.8, 1.21, -0.79] + [0.0] * 8                                   # band edges count, beyond not
    expect_fpn = np.zeros((3, 20), dtype=int)
    for s in range(3):
        for j in range(20):
            for i in range(12):
                if 0.8 <= abs(w[s, i, j]) <= 1.2:
                    expect_fpn[s, j] += 1
    expect = [sum(1 for j in range(20) if expect_fpn[s, j] > 1) for s in range(3)]
    assert expect_fpn[0, 5] == 2
    np.testing.assert_array_equal(features_per_neuron(w), expect_fpn)
    np.testing.assert_array_equal(count_polysemantic(w), expect)
    np.testing.assert_array_equal(count_polysemantic(torch.as_tensor(w)).numpy(), expect)
    assert 0 < min(expect) and max(expect) < 20


@pytest.mark.parametrize("noise", [False, True])
def test_gradient_against_autograd(noise):
    import torch

    g = torch.Generator().manual_seed(1)
    w = torch.randn(2, 5, 9, generator=g, dtype=torch.float64) * 0.5
    xi = torch.randn(2, 9, generator=g, dtype=torch.float64) * 0.3 if noise else None
    loss, grad = gradient(w, xi, l1=0.01)
    leaf = w.clone().requires_grad_(True)
    h = leaf + xi[:, None, :] if noise else leaf
    out = torch.relu(h @ leaf.transpose(1, 2))                         # the model on every basis vector at once
    ref = ((out - torch.eye(5, dtype=torch.float64)) ** 2).sum((1, 2)) + 0.01 * leaf.abs().sum((1, 2))
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def sweep():
    """A small grid with m >= 4n, 16 seeds per cell (~6 s on 2 loaded cores)."""
    return {(n, m): train_toy(ToyConfig(n_features=n, n_neurons=m), range(16), threads=1) for n, m in ((16, 64),
                                                                                                      (24, 96))}


def test_toy_sweep_follows_n2_over_4m_within_the_seed_spread(sweep):
    """Measured when written (16 seeds): n 16, m 64: 1.00 ± 0.73 (predicted 1.0); n 24, m 96: 1.31 ± 1.08 (1.5). The
    full sweep (analyses/results/incidental, 15 cells, 8 seeds) has every cell's mean within one seed std of
    n^2/(4m), and 0.86 of the predicted total."""
    measured = predicted = 0.0
    for (n, m), run in sweep.items():
        assert (run.settled_step > 0).all(), f"n {n}, m {m}: a seed did not settle"
        counts = run.final_counts.astype(float)
        assert counts.mean() > 0
        assert abs(counts.mean() - predicted_count(n, m)) <= counts.std(ddof=1), (n, m, counts)
        measured, predicted = measured + counts.mean(), predicted + predicted_count(n, m)
    assert 0.75 <= measured / predicted <= 1.25


def test_toy_settles_one_feature_per_neuron_near_its_largest_initial_weight(sweep):
    """The winner-take-all the n^2/(4m) argument rests on: each feature ends on one neuron, one of those where its
    initial weight was largest; polysemantic neurons hold features of opposite signs. Measured when written (n 24,
    m 96, 16 seeds): under AdamW the winner was the initial largest for 18% of features (chance: 1%) and ranked 7.9
    of 96 by initial |weight| on average (chance: 47.5); under SGD (lr 0.02, L1 0.01) 61% and 0.99."""
    run = sweep[(24, 96)]
    m = run.w.shape[-1]
    top = np.abs(run.w).argmax(-1)                                              # [seed, feature]
    assert (np.sort(np.abs(run.w), -1)[..., -2] < 0.1).all()                   # one weight per feature left
    start = np.abs(run.w_init)
    rank = (start > np.take_along_axis(start, top[..., None], -1)).sum(-1)      # 0: it was the largest at init
    assert rank.mean() < m / 8 and (rank == 0).mean() > 0.1
    for s in range(run.w.shape[0]):
        for j in np.flatnonzero(features_per_neuron(run.w[s]) > 1):
            signs = np.sign(run.w[s, np.abs(run.w[s, :, j]) >= 0.8, j])
            assert set(signs.tolist()) == {-1.0, 1.0}


def test_a_seed_does_not_depend_on_its_batch():
    cfg = ToyConfig(n_features=6, n_neurons=12, steps=200, noise="bernoulli", noise_std=0.1, stop_when_settled=False)
    together, alone = train_toy(cfg, (0, 1, 2), threads=1), train_toy(cfg, (1,), threads=1)
    np.testing.assert_array_equal(together.w[1], alone.w[0])
    np.testing.assert_array_equal(together.counts[1], alone.counts[0])


def test_bernoulli_noise_sparsifies_gaussian_noise_does_not():
    """The paper's noise variant without L1 (SGD lr 0.02, n 8, m 16, sigma 0.15), same seeds and so the same initial
    weights. Measured when written, mean over features of sum_j W_ij^4 per seed, start -> step 4000: Bernoulli
    0.25/0.21/0.14 -> 0.64/0.47/0.38, Gaussian -> 0.17/0.16/0.15."""
    def run(kind):
        return train_toy(ToyConfig(n_features=8, n_neurons=16, l1=0.0, optimizer="sgd", lr=0.02, steps=4000,
                                   noise=kind, noise_std=0.15, stop_when_settled=False, record_every=1000),
                         range(3), threads=1)

    bern, gauss = run("bernoulli"), run("gaussian")
    np.testing.assert_array_equal(bern.fourth_norm[:, 0], gauss.fourth_norm[:, 0])
    assert (bern.fourth_norm[:, -1] > 2 * bern.fourth_norm[:, 0]).all()
    assert (bern.fourth_norm[:, -1] > 2 * gauss.fourth_norm[:, -1]).all()
    assert gauss.fourth_norm[:, -1].max() < 0.2


# --- the analyzer ----------------------------------------------------------------------------------------------


def brute_force_features_per_neuron(path: Path, tokens: list[int], band=(0.8, 1.2)) -> tuple[np.ndarray, np.ndarray]:
    """From the safetensors file alone, float64 loops: centred embedding rows through W_in, each feature scaled by
    its largest |weight|, counted in the band. ([feature, neuron] weights, [neuron] features per neuron.)"""
    from safetensors.numpy import load_file

    sd = load_file(str(path))
    w_e, w_in = sd["embed.W_E"].astype(np.float64), sd["blocks.0.mlp.W_in"].astype(np.float64)
    rows = [w_e[t] for t in tokens]
    mean = sum(rows) / len(rows)
    n, m = len(tokens), w_in.shape[1]
    weight = np.zeros((n, m))
    for f in range(n):
        for j in range(m):
            weight[f, j] = sum((rows[f][d] - mean[d]) * w_in[d, j] for d in range(w_in.shape[0]))
    fpn = np.zeros(m, dtype=int)
    for f in range(n):
        top = max(abs(v) for v in weight[f])
        for j in range(m):
            if band[0] <= abs(weight[f, j]) / top <= band[1]:
                fpn[j] += 1
    return weight, fpn


@pytest.fixture(scope="module")
def analyzed(bundled, tmp_path_factory):
    from interp.activations.cache import CacheSettings
    from interp.analyzers.base import Unit
    from interp.analyzers.incidental_polysemanticity.analyzer import (
        IncidentalPolysemanticity,
    )
    from interp.prompts.source import PromptSource
    from interp.runner.context import Context, ContextSettings

    analyzer = IncidentalPolysemanticity()
    refs = [r for r in analyzer.select(bundled.refs()) if r.run in ("narrow", "wide") and r.step in (0, 3000)]
    ctx = Context(ContextSettings(CacheSettings(tmp_path_factory.mktemp("cache")), "cpu", PromptSource()))
    return analyzer, {(r.run, r.seed, r.step): (r, analyzer.run(Unit(analyzer.name, (r,)), ctx)) for r in refs}


@pytest.mark.parametrize("run", ["narrow", "wide"])
def test_analyzer_against_numpy_on_a_bundled_checkpoint(analyzed, run):
    from interp.toys.tasks import build_tasks

    _, results = analyzed
    ref, result = results[(run, 0, 3000)]
    tokens = [int(t) for task in build_tasks(ref.mixture_spec).values() for t in task.operand_tokens]
    weight, fpn = brute_force_features_per_neuron(ref.path, tokens)
    assert len(tokens) == 40 and result.scalars["n_features"] == 40                 # common 16 + rare 24 operands
    np.testing.assert_allclose(result.arrays["weight"][:, 0], weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.features_per_neuron[0], fpn)
    m = len(fpn)
    assert result.scalars["n_polysemantic"] == int((fpn > 1).sum())
    assert result.scalars["features_per_neuron_hist"] == np.bincount(fpn, minlength=41).tolist()
    assert result.scalars["neurons_per_feature"] == pytest.approx(fpn.sum() / 40)
    assert result.scalars["baseline"] == pytest.approx(40 ** 2 / (4 * m))
    assert result.scalars["baseline_applies"] == (m >= 40)


def test_analyzer_rule_gives_the_toy_count_on_trained_toy_weights(sweep):
    """On the toy's own trained weights (features as rows, one layer), the analyzer's relative-band rule counts
    exactly the polysemantic neurons the paper's absolute band does."""
    from interp.analyzers.incidental_polysemanticity.analyzer import (
        carried,
        relative_weights,
    )

    run = sweep[(16, 64)]
    for s in range(run.w.shape[0]):
        fpn = carried(relative_weights(run.w[s][:, None, :]), (0.8, 1.2)).sum(0)[0]
        np.testing.assert_array_equal(fpn, features_per_neuron(run.w[s]))
    assert run.final_counts.sum() > 0


def test_summary_headline_and_figures(analyzed, tmp_path):
    from interp.report.figures import from_json

    analyzer, results = analyzed
    out = analyzer.summarize([r for _, r in results.values()], {})
    wide = out["per_run"]["wide"]["3000"]["n_polysemantic"]
    assert wide["per_seed"] == {str(s): results[("wide", s, 3000)][1].scalars["n_polysemantic"] for s in (0, 1, 2)}
    assert out["baseline"]["wide"] == {"n_features": 40, "n_neurons": 256, "n2_over_4m": 1600 / 1024,
                                       "applies": True}
    assert not out["baseline"]["narrow"]["applies"]
    figs = {f["name"]: from_json(f) for f in out["figures"]}
    assert set(figs) == {"features_per_neuron", "polysemantic_vs_baseline", "features_per_neuron_hist"}
    assert all(not f.why_not_drawn() for f in figs.values())
    base = [l for l in figs["polysemantic_vs_baseline"].lines if l.group.startswith("n²/(4m)")]
    assert len(base) == 1 and base[0].y[0] == pytest.approx(1.5625)       # drawn for wide only (narrow: m < n)
    labels = {r["label"] for r in out["headline"] if r["run"] == "wide"}
    assert "polysemantic neurons, step 3000" in labels
    json.dumps(out)


def test_band_option_is_checked():
    from interp.analyzers.incidental_polysemanticity.analyzer import (
        IncidentalPolysemanticity,
    )
    from interp.errors import ConfigError

    with pytest.raises(ConfigError, match="band"):
        IncidentalPolysemanticity.config_from({"band": "1.1,1.2"})
    assert IncidentalPolysemanticity.config_from({"band": "0.9,1.1"}).band == (0.9, 1.1)


@pytest.mark.slow
def test_sweep_script_smoke(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "analyses" / "incidental_polysemanticity.py"), "--out", str(tmp_path),
                    "--smoke"], check=True, capture_output=True)
    cells = json.loads((tmp_path / "sweep.json").read_text())["cells"]
    assert [(c["n"], c["m"]) for c in cells] == [(8, 16), (8, 32)]
    assert all(c["predicted"] == c["n"] ** 2 / (4 * c["m"]) and len(c["counts"]) == 3 for c in cells)
    assert len(json.loads((tmp_path / "noise.json").read_text())["runs"]) == 3
    assert (tmp_path / "incidental.png").read_bytes()[:4] == b"\x89PNG"
