"""The fourier-competition analyzer on the bundled series (the full bundled analysis, run once per session)."""

from tests.helpers import drawn_pngs


def test_bundled_modadd_few_circles_survive(bundled_results):
    summary = bundled_results.summaries["fourier-competition"]
    steps = summary["per_run"]["modadd"]
    first, last = steps[min(steps, key=int)], steps[max(steps, key=int)]
    assert all(v == 0 for v in first["n_circles"]["per_seed"].values())       # a random embedding has none
    assert all(1 <= v <= 6 for v in last["n_circles"]["per_seed"].values())   # of 29 possible: few survive
    fit = summary["fittest"]["modadd"]
    assert sorted(fit["survivors"]) == ["0", "1", "2"]
    assert 0 <= fit["auroc_initial_signal"] <= 1 and 0 <= fit["auroc_initial_grad"] <= 1
    # runs with a modular concept only: the toy modadd task, and the GPT-NeoX runs' concepts file (their add task's
    # operands); the lookup runs and the language have none
    assert set(summary["per_run"]) == {"modadd", "neox-narrow", "neox-wide"}
    for f in drawn_pngs(bundled_results, "fourier-competition"):
        assert open(f, "rb").read(4) == b"\x89PNG"
