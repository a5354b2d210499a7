"""The likelihood-chain analyzer on the bundled series (the full bundled analysis, run once per session)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from interp.analyzers.likelihood_chain.analyzer import (
    METRICS,
)
from tests.helpers import ranks


def test_analyzer_on_the_bundle_holds_the_correlations(bundled_results):
    """The default ``interp analyze`` on the bundle (every seed and step): correlations against numpy's."""
    summary = bundled_results.summaries["likelihood-chain"]
    assert summary["units"] == 96 and summary["x"] == "log10(step), step 0 left out"
    units = {}
    for f in (bundled_results.out_dir / "likelihood-chain").rglob("step*.json"):
        u = json.loads(f.read_text())
        c = u["provenance"]["checkpoints"][0]
        units[(c["run"], c["seed"], c["step"])] = u["scalars"]
    for run, tasks in (("narrow", ("common", "rare")), ("wide", ("common", "rare")), ("modadd", ("modadd",))):
        steps = sorted({st for r, _, st in units if r == run and st > 0})
        for task in tasks:
            for m in METRICS:
                x = [math.log10(st) for s in (0, 1, 2) for st in steps]
                y = [units[(run, s, st)][f"{task}/{m}"] for s in (0, 1, 2) for st in steps]
                c = summary["correlations"][run][task][m]
                assert c["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
                assert c["spearman"] == pytest.approx(np.corrcoef(ranks(np.array(x)), ranks(np.array(y)))[0, 1],
                                                      abs=1e-9)
                seed2 = np.corrcoef(x[-len(steps):], y[-len(steps):])[0, 1]
                assert c["per_seed"]["2"]["pearson"] == pytest.approx(seed2, abs=1e-9)
    width = summary["width_correlations"]["narrow, wide"]
    assert width["widths"] == {"narrow": 8.0, "wide": 256.0}
    x = [math.log10(w) for w in (8, 8, 8, 256, 256, 256)]
    y = [units[(r, s, 3000)]["rare/accuracy"] for r in ("narrow", "wide") for s in (0, 1, 2)]
    assert width["tasks"]["rare"]["accuracy"]["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    names = {f["name"] for f in summary["figures"]}
    assert {"chain_common", "chain_rare", "chain_modadd", "correlation_with_log_step",
            "strongest_wrong_mass"} <= names
    assert any(r["label"] == "rare: r(accuracy, log width), last step" for r in summary["headline"])
    assert any(r["run"] == "modadd" and r["label"] == "modadd: r(log p(correct), log step)"
               for r in summary["headline"])
    assert all(f["caption"] and "2406.04391" in f["caption"] for f in summary["figures"])
