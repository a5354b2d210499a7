"""Headline rows: an analyzer's few key numbers, structured so that a page or a terminal prints each as
``mean ± std (n seeds)`` instead of a raw list.

A row is a dict (JSON, stored in ``summary.json`` under ``headline``) with ``run``, ``label`` and one of:

- ``per_seed``: ``{seed: value}`` (``None`` for a seed where the quantity does not exist, e.g. no drop); printed as
  mean ± std over the seeds (population std, as in the per-run tables). ``value``, when given, is the mean printed
  (an analyzer's own aggregate, kept exactly as it computes it); otherwise the mean of ``per_seed``;
- ``value``: one number (e.g. pooled over seeds; ``note`` says how);
- ``text``: words (e.g. the kinds of SAE fit found).

``digits`` is the number of decimals printed. No numpy: the CLI prints these too.
"""

from __future__ import annotations

import math
from typing import Any


def seeds(run: str, label: str, per_seed: dict[Any, float | None], digits: int = 3, value: float | None = None,
          note: str = "") -> dict[str, Any]:
    row = {"run": run, "label": label, "per_seed": {str(k): _plain(v) for k, v in per_seed.items()},
           "digits": digits, "note": note}
    if value is not None:
        row["value"] = float(value)
    return row


def single(run: str, label: str, value: float | None, digits: int = 3, note: str = "") -> dict[str, Any]:
    return {"run": run, "label": label, "value": _plain(value), "digits": digits, "note": note}


def text(run: str, label: str, words: str, note: str = "") -> dict[str, Any]:
    return {"run": run, "label": label, "text": words, "note": note}


def _plain(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _num(v: float | None, digits: int) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.{max(1, digits - 2)}e}"
    return f"{v:.{digits}f}"


def spread(row: dict[str, Any]) -> tuple[float | None, float | None, int, int]:
    """(mean, std, seeds with a value, seeds) of a ``per_seed`` row."""
    vals = [v for v in row["per_seed"].values() if v is not None and math.isfinite(v)]
    n, total = len(vals), len(row["per_seed"])
    if not vals:
        return None, None, 0, total
    mean = sum(vals) / n
    # the sample standard deviation (n - 1): with 3 seeds the population one (n) understates the spread by 18%
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return (row["value"] if row.get("value") is not None else mean), std, n, total


def format_value(row: dict[str, Any]) -> str:
    """The row's value as text: ``0.53 ± 0.05 (3 seeds)``, ``0.709; pooled over 3 seeds``, or its words."""
    value, note = format_parts(row)
    return f"{value}; {note}" if note else value


def format_parts(row: dict[str, Any]) -> tuple[str, str]:
    """(value, note): a page prints the note smaller, under the value."""
    if "text" in row:
        out = str(row["text"])
    elif "per_seed" in row:
        mean, std, n, total = spread(row)
        d = int(row.get("digits", 3))
        if mean is None:
            out = f"n/a ({total} seeds)"
        elif total == 1:
            out = f"{_num(mean, d)} (1 seed)"
        else:
            seeds_txt = f"{n} seeds" if n == total else f"{n} of {total} seeds"
            out = f"{_num(mean, d)} ± {std:.{d}f} ({seeds_txt})"
    else:
        out = _num(row.get("value"), int(row.get("digits", 3)))
    return out, str(row.get("note") or "")


def format_row(row: dict[str, Any]) -> tuple[str, str]:
    """(label with its run, value text), for a terminal line."""
    run = row.get("run") or ""
    return (f"{run}: {row['label']}" if run else str(row["label"])), format_value(row)
