"""Fault-suite helpers (the fixtures ``series`` and ``outside`` live in tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in Path(folder).rglob("*")}


def edit_manifest(series: Path, fn) -> None:
    path = series / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def no_traceback(r) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: "), r.stderr


def no_partial_files(folder: Path) -> None:
    """Nothing half-written is left where a reader would take it for complete."""
    if not Path(folder).exists():
        return
    leftovers = [p for p in Path(folder).rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers


def one_checkpoint(series: Path, seed: int = 0, step: int = 20) -> Path:
    return series / "tiny" / f"seed{seed}" / f"step{step:06d}.safetensors"


def in_process_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}
