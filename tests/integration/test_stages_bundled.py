"""The stages analyzer on the bundled series (the full bundled analysis, run once per session)."""

import numpy as np

from tests.helpers import drawn_pngs


def test_bundled_stages_find_grokking_and_finite_llcs(bundled_results):
    summary = bundled_results.summaries["stages"]
    for seed, drops in summary["drops"]["modadd"].items():
        onsets = [d["onset_step"] for d in drops["modadd"]]
        assert onsets and 10 <= onsets[0] <= 316, (seed, onsets)   # the held-out loss falls at grokking
    for run in ("narrow", "wide", "modadd"):
        steps = summary["per_run"][run]
        for st, row in steps.items():
            assert row["llc_diverged"]["mean"] == 0, (run, st)
        last = steps[max(steps, key=int)]
        assert all(np.isfinite(v) and v > 0 for v in last["llc"]["per_seed"].values())   # at a minimum: positive
    for f in drawn_pngs(bundled_results, "stages"):
        assert open(f, "rb").read(4) == b"\x89PNG"
