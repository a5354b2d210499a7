"""``likelihood-chain``: the five metrics against a float64 brute force from a bundled model's logits; a planted
series where log p(correct) rises smoothly while the mass on a wrong choice moves on its own, which must reproduce the
degraded correlation of accuracy (Schaeffer et al., arXiv 2406.04391); the analyzer on the bundle through the API;
the choices JSONL on a nanoGPT checkpoint with its character vocabulary, and its validation."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from interp.analyzers.likelihood_chain.analyzer import LikelihoodChain, chain_metrics
from interp.checkpoints.manifest import CheckpointRef, Processing
from tests.helpers import ranks

METRICS = ("log_p_correct", "p_correct", "p_choice", "brier", "accuracy")


def brute_force(logits_row: np.ndarray, choices: list[int], answer_token: int) -> dict:
    """One prompt's metrics by hand, in float64, one choice at a time."""
    z = logits_row.astype(np.float64)
    m = z.max()
    logp = z - (m + math.log(sum(math.exp(v - m) for v in z)))
    p_choices = [math.exp(logp[c]) for c in choices]
    total = sum(p_choices)
    q = [p / total for p in p_choices]
    a = choices.index(answer_token)
    best = max(range(len(choices)), key=lambda i: (logp[choices[i]], -i))
    return {"log_p_correct": logp[answer_token], "p_correct": math.exp(logp[answer_token]), "p_choice": q[a],
            "brier": sum((qi - (i == a)) ** 2 for i, qi in enumerate(q)), "accuracy": float(best == a),
            "wrong_max": max(qi for i, qi in enumerate(q) if i != a),
            "wrong_arg": max((i for i in range(len(q)) if i != a), key=lambda i: (q[i], -i))}


def _context(cache_dir):
    from interp.activations.cache import CacheSettings
    from interp.prompts.source import PromptSource
    from interp.runner.context import Context, ContextSettings

    return Context(ContextSettings(CacheSettings(cache_dir), "cpu", PromptSource(n_background=0)))


@pytest.mark.parametrize("run,step", [("wide", 55), ("narrow", 3000), ("modadd", 100)])
def test_metrics_equal_a_float64_brute_force_from_the_logits(bundled, run, step, tmp_path):
    import torch

    from interp.analyzers.base import Unit
    from interp.checkpoints.loading import load_ref
    from interp.toys.tasks import LABEL_POS, build_tasks, eval_sets

    (ref,) = bundled.refs(run=run, seed=1, step=step)
    result = LikelihoodChain().run(Unit("likelihood-chain", (ref,)), _context(tmp_path))
    model = load_ref(ref, "cpu")
    tasks = build_tasks(ref.mixture_spec)
    for name, prompts in eval_sets(ref.mixture_spec).items():
        task = tasks[name]
        choices = (task.operand_tokens if task.spec.kind == "modular_addition" else task.label_tokens).tolist()
        with torch.no_grad():
            logits = model(torch.as_tensor(prompts.tokens))[:, LABEL_POS].numpy()
        rows = [brute_force(logits[i], choices, int(prompts.tokens[i, 2])) for i in range(len(prompts))]
        for m in METRICS + ("wrong_max",):
            expect = float(np.mean([r[m] for r in rows]))
            assert result.scalars[f"{name}/{m}"] == pytest.approx(expect, rel=1e-9, abs=1e-12), (name, m)
        i = result.scalars["tasks"].index(name)
        counts = np.bincount([r["wrong_arg"] for r in rows], minlength=len(choices)) / len(rows)
        np.testing.assert_allclose(result.arrays["wrong_top_share"][i, :len(choices)], counts, atol=1e-12)
        assert result.arrays["choice_tokens"][i, :len(choices)].tolist() == choices
    if run == "modadd":   # the residues are the whole vocabulary: renormalising changes nothing
        assert result.scalars["modadd/p_choice"] == pytest.approx(result.scalars["modadd/p_correct"], rel=1e-9)


# the planted series: the right answer's log-probability rises linearly in log step; one wrong choice alternates
# between beating it and trailing it, in a pattern with no trend over steps
STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
STRONG = [True, True, False, False, True, True, False, False, True, True, False]   # step 0 first
CHOICES = [0, 1, 2, 3]   # of a 12-token vocabulary; tokens 4-11 are no choice


def planted_logits(seed: int, n_prompts: int = 40) -> tuple[list[np.ndarray], np.ndarray]:
    """[step] of [prompt, vocab] logits, and [prompt] answer index (into CHOICES)."""
    rng = np.random.default_rng(seed)
    answer = rng.integers(0, 4, n_prompts)
    rival = (answer + 1 + rng.integers(0, 3, n_prompts)) % 4       # each prompt's strong wrong choice
    out = []
    for step, strong in zip(STEPS, STRONG):
        p_c = 0.05 * max(step, 1) ** 0.2 * np.exp(rng.normal(0, 0.01))
        factor = rng.uniform(1.3, 2.0, n_prompts) if strong else rng.uniform(0.3, 0.8, n_prompts)
        p = np.zeros((n_prompts, 12))
        rows = np.arange(n_prompts)
        p[:, :4] = 0.02
        p[rows, answer] = p_c
        p[rows, rival] = factor * p_c
        p[:, 4:] = ((1 - p[:, :4].sum(1)) / 8)[:, None]
        out.append(np.log(p) + rng.normal(0, 1, (n_prompts, 1)))   # a per-prompt shift changes no probability
    return out, answer




def test_planted_wrong_choice_degrades_accuracy_but_not_log_p(tmp_path):
    from interp.analyzers.base import Unit

    analyzer = LikelihoodChain()
    results, expect = [], {m: ([], []) for m in METRICS}
    for seed in (0, 1, 2):
        logits, answer = planted_logits(seed)
        for step, z in zip(STEPS, logits):
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            ref = CheckpointRef(run="planted", seed=seed, step=step, path=Path("planted.safetensors"),
                                model={"d_mlp": 4}, processing=Processing())
            from interp.analyzers.likelihood_chain.analyzer import ChoiceTask

            task = ChoiceTask("planted", logp[:, CHOICES], answer, np.array(CHOICES))
            results.append(analyzer._result(Unit(analyzer.name, (ref,)), ref, [task]))
            if step == 0:
                continue   # log step leaves step 0 out
            rows = [brute_force(z[i], CHOICES, CHOICES[answer[i]]) for i in range(len(answer))]
            for m in METRICS:
                expect[m][0].append(math.log10(step))
                expect[m][1].append(np.mean([r[m] for r in rows]))
    summary = analyzer.summarize(results, {})
    corr = summary["correlations"]["planted"]["planted"]
    r = {}
    for m in METRICS:
        x, y = (np.asarray(v) for v in expect[m])
        r[m] = np.corrcoef(x, y)[0, 1]
        assert corr[m]["pearson"] == pytest.approx(r[m], abs=1e-9), m
        assert corr[m]["spearman"] == pytest.approx(np.corrcoef(ranks(x), ranks(y))[0, 1], abs=1e-9), m
        assert corr[m]["n_points"] == 30
    assert r["log_p_correct"] > 0.99
    assert abs(r["accuracy"]) < 0.3 and abs(r["brier"]) < 0.5
    assert abs(r["log_p_correct"]) - abs(r["accuracy"]) > 0.6
    # per seed: the same degradation in every seed
    for s in ("0", "1", "2"):
        assert corr["log_p_correct"]["per_seed"][s]["pearson"] > 0.99
        assert abs(corr["accuracy"]["per_seed"][s]["pearson"]) < 0.4
    labels = [row["label"] for row in summary["headline"]]
    assert "planted: r(log p(correct), log step)" in labels and "planted: r(accuracy, log step)" in labels


def test_chain_metrics_on_plain_arrays():
    logp = np.log(np.array([[0.5, 0.3, 0.1], [0.1, 0.6, 0.2], [0.25, 0.25, 0.0001]]))
    out = chain_metrics(logp, np.array([0, 0, 1]))
    q0 = np.array([0.5, 0.3, 0.1]) / 0.9
    assert out["p_choice"][0] == pytest.approx(q0[0])
    assert out["brier"][0] == pytest.approx((q0[0] - 1) ** 2 + q0[1] ** 2 + q0[2] ** 2)
    assert out["accuracy"].tolist() == [1.0, 0.0, 0.0]   # a tie goes to the first choice
    assert out["wrong_arg"].tolist() == [1, 1, 0]
    # a choice a prompt lacks (-inf) holds no mass and is never the strongest wrong choice
    out = chain_metrics(np.array([[np.log(0.2), np.log(0.1), -np.inf]]), np.array([0]))
    assert out["p_choice"][0] == pytest.approx(2 / 3) and out["wrong_arg"][0] == 1




# the choices JSONL, on a nanoGPT checkpoint with its character vocabulary (meta.pkl beside it)
VOCAB = sorted(set("abcdefghijklmnopqrstuvwxyz .?"))


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    from tests.nanogpt_reference import save_ckpt

    root = tmp_path_factory.mktemp("nano")
    (root / "seed0").mkdir()
    save_ckpt(root / "seed0" / "ckpt_100.pt", seed=3, iter_num=100)
    (root / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": len(VOCAB), "stoi": {c: i for i, c in
                                                                                   enumerate(VOCAB)},
                                                  "itos": dict(enumerate(VOCAB))}))
    return root


def test_choices_jsonl_scores_summed_token_logprobs(nano, tmp_path):
    import torch

    from interp.analyzers.base import Unit
    from interp.checkpoints.loading import load_nanogpt
    from interp.prompts.choices import score_choices_file

    items = [{"prompt": "the cat sat", "choices": [" mat", " hat", " a"], "answer": 0},
             {"prompt": "is it", "choices": [" yes", " no"], "answer": 1, "source": "ignored"}]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n\n")
    ref = CheckpointRef(run="nano", seed=0, step=100, path=nano / "seed0" / "ckpt_100.pt", model={},
                        processing=Processing(), format="nanogpt")
    model = load_nanogpt(ref.path, "cpu")
    logp, answer = score_choices_file(path, ref, model, None, batch_size=2)
    stoi = {c: i for i, c in enumerate(VOCAB)}
    for i, item in enumerate(items):
        for j, choice in enumerate(item["choices"]):
            ids = [stoi[c] for c in item["prompt"] + choice]
            with torch.no_grad():   # one sequence at a time, no padding: the reference
                z = model(torch.tensor([ids]))[0].double()
            lp = torch.log_softmax(z, -1)
            n = len(item["prompt"])
            expect = sum(float(lp[n - 1 + k, ids[n + k]]) for k in range(len(choice)))
            assert logp[i, j] == pytest.approx(expect, abs=1e-5)
    assert logp[1, 2] == -np.inf and answer.tolist() == [0, 1]

    class Ctx:   # what the analyzer reads of a context on this path
        settings = type("S", (), {"prompts": type("P", (), {"tokenizer": None})()})()
        batch_size = 4

        def model(self, ref):
            return model

        def available(self, ref):   # a checkpoint with neither a mixture nor a task file: the choices file alone
            return set()

        def source(self, ref):
            return self.settings.prompts

    analyzer = LikelihoodChain(LikelihoodChain.config_from({"choices_file": str(path)}))
    result = analyzer.run(Unit(analyzer.name, (ref,)), Ctx())
    expect = chain_metrics(logp, answer)
    assert result.scalars["tasks"] == ["qa"]
    for m in METRICS:
        assert result.scalars[f"qa/{m}"] == pytest.approx(float(expect[m].mean()), rel=1e-12)


@pytest.mark.parametrize("line,match", [
    ('{"prompt": "a", "choices": [" b", " c"]}', r"qa.jsonl:2: missing \['answer'\]"),
    ('{"prompt": "a", "choices": [" b"], "answer": 0}', "qa.jsonl:2: choices must be a list of at least two"),
    ('{"prompt": "a", "choices": [" b", " b"], "answer": 0}', "qa.jsonl:2: choices repeat"),
    ('{"prompt": "a", "choices": [" b", " c"], "answer": 2}',
     r"qa.jsonl:2: answer must be an integer index in \[0, 1\]"),
    ('{"prompt": "a", "choices": [" b", " c"], "answer": true}', "qa.jsonl:2: answer must be an integer"),
    ('{"prompt": 3, "choices": [" b", " c"], "answer": 0}', "qa.jsonl:2: prompt must be a string"),
    ('[1, 2]', "qa.jsonl:2: expected an object"),
    ('{"prompt": "a", ', "qa.jsonl:2: not a JSON line"),
])
def test_choices_file_errors_name_file_and_line(tmp_path, line, match):
    from interp.errors import PromptError
    from interp.prompts.choices import read_items

    path = tmp_path / "qa.jsonl"
    path.write_text('{"prompt": "x", "choices": [" y", " z"], "answer": 1}\n' + line + "\n")
    with pytest.raises(PromptError, match=match):
        read_items(path)


def test_choices_file_that_does_not_fit_the_model_is_refused(nano, tmp_path):
    from interp.errors import ConfigError, PromptError
    from interp.prompts.choices import encode_items, read_items

    stoi = {c: i for i, c in enumerate(VOCAB)}
    path = tmp_path / "qa.jsonl"
    path.write_text('{"prompt": "", "choices": [" b", " c"], "answer": 0}\n')
    with pytest.raises(PromptError, match="qa.jsonl:1: the prompt encodes to no tokens"):
        encode_items(read_items(path), lambda t: [stoi[c] for c in t], 8, len(VOCAB), path)
    path.write_text('{"prompt": "ab", "choices": [" b", " a very long one"], "answer": 0}\n')
    with pytest.raises(PromptError, match="qa.jsonl:1: choice .* not shorter than the model's context of 8"):
        encode_items(read_items(path), lambda t: [stoi[c] for c in t], 8, len(VOCAB), path)
    # a long prompt keeps its last tokens
    path.write_text('{"prompt": "abcdefghij", "choices": [" b", " c"], "answer": 0}\n')
    ((ctx, ids), _), = encode_items(read_items(path), lambda t: [stoi[c] for c in t], 8, len(VOCAB), path)
    assert ctx == [stoi[c] for c in "efghij"] and len(ctx + ids) == 8
    with pytest.raises(PromptError, match="outside the model's vocabulary"):
        encode_items(read_items(path), lambda t: [stoi[c] + 20 for c in t], 8, len(VOCAB), path)
    with pytest.raises(ConfigError, match="choices file .*missing.jsonl does not exist"):
        read_items(tmp_path / "missing.jsonl")


def test_editing_the_choices_file_changes_the_unit_key(tmp_path):
    """A result computed from a choices file must not be served after the file changes (same path, new content)."""
    import hashlib

    path = tmp_path / "qa.jsonl"
    path.write_text('{"prompt": "a", "choices": [" b", " c"], "answer": 0}\n')
    analyzer = LikelihoodChain(LikelihoodChain.config_from({"choices_file": str(path)}))
    first = analyzer.input_digests()
    assert first == {"choices_file": hashlib.sha256(path.read_bytes()).hexdigest()}
    path.write_text('{"prompt": "a", "choices": [" b", " c"], "answer": 1}\n')
    assert analyzer.input_digests() != first
    assert LikelihoodChain().input_digests() == {}
    calls = []
    import interp.checkpoints.manifest as manifest

    real = manifest.file_sha256
    manifest.file_sha256 = lambda p: calls.append(p) or real(p)
    try:
        for _ in range(5):   # five checkpoints' unit keys: the unchanged file is hashed at most once
            analyzer.input_digests()
    finally:
        manifest.file_sha256 = real
    assert len(calls) == 0
