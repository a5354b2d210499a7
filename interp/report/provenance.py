"""The run record (``run.json`` beside the results): what produced them, so the report can show it and a reader can
redo it. Command line, the series (its manifest, every analysed checkpoint's sha256 and size as actually read),
run options, each analyzer's config, package versions, device, wall times.

No absolute path is recorded: the folder is meant to be moved and shared, and a path of the machine that ran it
says nothing to a reader (and may say too much). Paths inside the series are kept relative to the manifest's folder;
any other absolute path (in the command line, or a manifest naming files outside its folder) is shortened to
``…/<name>``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

RECORD = "run.json"
MANIFEST_LIMIT = 256 * 1024       # embed the manifest's text up to this size (its checkpoint table is always kept)
_ABS = re.compile(r"(?<![\w.:/~-])(?:/[\w.+-]+(?:/[^\s'\"]*)+|~/[^\s'\"]+|[A-Za-z]:\\[^\s'\"]+)")
EXTRA_PACKAGES = ("scipy", "scikit-learn", "safetensors", "plotly", "matplotlib", "tqdm")


def short_path(text: str) -> str:
    """Every absolute path in ``text`` replaced by ``…/<its last component>``."""
    def one(m: re.Match) -> str:
        name = re.split(r"[\\/]", m.group(0).rstrip("/\\"))[-1]
        return f"…/{name}" if name else "…/"
    return _ABS.sub(one, text)


def relative_to(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return short_path(str(path))


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from interp.results import package_versions

    out = package_versions()
    for p in EXTRA_PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "absent"
    return out


def device_info(requested: str, resolved: str) -> dict[str, Any]:
    out = {"requested": requested, "used": resolved, "platform": platform.platform(terse=True),
           "machine": platform.machine(), "cpus": os.cpu_count()}
    if resolved.startswith("cuda"):
        import torch

        out["gpu"] = torch.cuda.get_device_name(torch.device(resolved))
    return out


def series_record(series: Any, refs: list) -> dict[str, Any]:
    """The series as a reader needs it: where it came from (by name), each run's model and tasks, and the
    checkpoint table (path relative to the manifest's folder, sha256, size)."""
    bundled = Path(__file__).resolve().parents[1] / "data" / "bundled"
    source = Path(series.source) if getattr(series, "source", None) else None
    is_bundled = source is not None and source.resolve().parent == bundled
    out: dict[str, Any] = {
        "name": "bundled series (interp/data/bundled/manifest.yaml)" if is_bundled
        else (source.name if source else "found by the naming rule <run>/seed<S>/step<T> (no manifest file)"),
        "runs": _runs(refs), "checkpoints": [_checkpoint(r, series.root) for r in refs]}
    if source is not None and source.is_file() and source.stat().st_size <= MANIFEST_LIMIT:
        out["manifest_text"] = short_path(source.read_text(errors="replace"))
    return out


def _runs(refs: list) -> list[dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = {}
    for r in refs:
        row = runs.setdefault(r.run, {"run": r.run, "format": r.format, "seeds": set(), "steps": set(),
                                      "model": {k: r.model.get(k) for k in ("n_layers", "d_model", "d_mlp", "n_heads",
                                                                           "d_vocab", "n_ctx", "act_fn")
                                                if k in r.model},
                                      "tasks": [{"name": t["name"], "kind": t.get("kind"),
                                                 "frequency": t.get("frequency")}
                                                for t in (r.mixture or {}).get("tasks", [])],
                                      "processing": r.processing.key()})
        row["seeds"].add(r.seed)
        row["steps"].add(r.step)
    return [{**v, "seeds": sorted(v["seeds"]), "steps": sorted(v["steps"])} for v in runs.values()]


def _checkpoint(r: Any, root: Path) -> dict[str, Any]:
    return {"id": r.id, "run": r.run, "seed": r.seed, "step": r.step, "path": relative_to(r.path, root),
            "sha256": r.sha256, "size": r.size}


def options_record(options: Any) -> dict[str, Any]:
    p = options.prompts
    prompts = {"n_background": p.n_background, "split": p.split, "seed": p.seed}
    if p.tokens_file is not None:
        prompts["tokens_file"] = short_path(str(p.tokens_file)) if Path(p.tokens_file).is_absolute() \
            else str(p.tokens_file)
    if p.fixed is not None:
        prompts["fixed"] = "prompts given in code"
    return {"device": options.device, "batch_size": options.batch_size, "storage_dtype": options.storage_dtype,
            "nonfinite": options.nonfinite, "allow_pickle": options.allow_pickle,
            "runs": list(options.runs) if options.runs else "all", "prompts": prompts,
            "workers": options.workers, "threads": options.threads}


def timings(outcomes: list, unit_seconds: dict[str, list[tuple]],
            summarize_s: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per analyzer: units run now and reused, seconds in its units and its share of activation caching (from each
    unit's provenance, so reused units count what they cost when they ran), and seconds summarizing."""
    out: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        t = out.setdefault(o.analyzer, {"units_run": 0, "units_reused": 0})
        t["units_run" if o.ran else "units_reused"] += 1
    for name, pairs in unit_seconds.items():
        t = out.setdefault(name, {"units_run": 0, "units_reused": 0})
        timed = [p for p in pairs if p[0] is not None]   # units written before times were recorded have none
        t["compute_s"] = round(sum(p[0] for p in timed), 3) if timed else None
        t["cache_s"] = round(sum(p[1] or 0.0 for p in timed), 3) if timed else None
        t["summarize_s"] = round(summarize_s.get(name, 0.0), 3)
        t["shared_pass_units"] = sum(1 for p in pairs if len(p) > 2 and p[2])
    return out


def write_run_record(out_dir: Path, record: dict[str, Any]) -> Path:
    from interp.trust import atomic

    record = {"schema": 1, "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), **record}
    return atomic.write_text(Path(out_dir) / RECORD, json.dumps(record, indent=1, default=str))


def read_run_record(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        from interp.errors import ResultError

        raise ResultError(f"{path}: not a readable run record ({e}); rerun `interp analyze` to rewrite it") from None
    return record if isinstance(record, dict) else None


def command_line(argv: list[str] | None, call: str) -> str:
    """The command as typed (absolute paths shortened), or a description of the Python call."""
    if not argv:
        return call
    import shlex

    return short_path(shlex.join(argv))
