"""Series-level tables from unit results: one scalar per (run, step), with its mean and spread over seeds."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.results import Result, by_run_step


def summarize_scalars(results: list[Result], keys: tuple[str, ...]) -> dict[str, Any]:
    """``{"per_run": {run: {step: {key: {"mean", "std", "per_seed": {seed: value}}}}}}`` for the keys present."""
    per_run: dict[str, dict[str, dict]] = {}
    for run, steps in by_run_step(results).items():
        per_run[run] = {}
        for step, rs in steps.items():
            row = {}
            for k in keys:
                vals = {str(r.seed): r.scalars[k] for r in rs if k in r.scalars}
                if vals:
                    v = np.asarray(list(vals.values()), dtype=float)
                    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0   # sample std: n - 1, as every spread
                    row[k] = {"mean": float(v.mean()), "std": std, "per_seed": vals}
            per_run[run][str(step)] = row
    return {"per_run": per_run}


def curve(per_run: dict[str, dict[str, dict]], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """{run: (steps, means)} for ``lines_by_run``, skipping runs without the key."""
    out = {}
    for run, steps in per_run.items():
        pts = [(int(s), row[key]["mean"]) for s, row in steps.items() if key in row]
        if pts:
            out[run] = ([p[0] for p in pts], [p[1] for p in pts])
    return out
