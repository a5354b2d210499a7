"""Helpers shared by the tests: tiny models and mixtures with known answers, a planted model, the CLI in-process,
and the fault suite's file surgery. Import them from here (``from tests.helpers import cli``); fixtures live in
``tests/conftest.py``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml


def tiny_model_kwargs(d_vocab: int = 20, d_mlp: int = 16, n_layers: int = 1, **kw) -> dict:
    return {**dict(n_layers=n_layers, d_model=16, d_mlp=d_mlp, n_heads=2, d_head=8, n_ctx=3, d_vocab=d_vocab,
                   act_fn="relu", normalization_type=None), **kw}


def tiny_mixture():
    from interp.toys.tasks import MixtureSpec, TaskSpec

    return MixtureSpec(d_vocab=20, n_background=8, tasks=(
        TaskSpec("a", "lookup", n_operands=3, n_labels=2, frequency=0.3, seed=1),
        TaskSpec("b", "lookup", n_operands=3, n_labels=2, frequency=0.1, seed=2)))


def tiny_train_config(run: str = "tiny", seed: int = 0, n_steps: int = 20, **kw):
    from interp.toys.training import TrainConfig

    return TrainConfig(run=run, model=tiny_model_kwargs(), mixture=tiny_mixture(), seed=seed, n_steps=n_steps,
                       batch_size=64, n_checkpoints=4, **kw)


def drawn_pngs(report, analyzer: str) -> list:
    """The PNG of every figure the report drew for ``analyzer`` (figures that carry no information are not drawn)."""
    from interp.report.figures import from_json

    specs = [from_json(d) for d in report.summaries[analyzer].get("figures") or []]
    return [report.out_dir / analyzer / f"{f.name}.png" for f in specs if not f.why_not_drawn()]


LA, LB = 8, 9


def planted(tmp_path):
    """Task A (second token 4 or 5, label 8) runs only through neurons {0, 1}; task B (6/7 -> 9) only through {2, 3}.
    Attention writes nothing, so the label position sees its own token alone; neurons 4-7 never fire."""
    import numpy as np
    import torch

    from interp.checkpoints.loading import build_model, save_checkpoint
    from interp.checkpoints.manifest import CheckpointRef, Processing, file_sha256
    from interp.prompts.prompt_set import PromptSet

    kw = tiny_model_kwargs(d_vocab=12, d_mlp=8, n_heads=1, d_head=8) | {"d_model": 8, "seed": 0}
    model = build_model(kw)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E[4:6, 0] = 2.0
        model.W_E[6:8, 1] = 2.0
        model.blocks[0].mlp.W_in[0, 0:2] = 1.0
        model.blocks[0].mlp.W_in[1, 2:4] = 1.0
        model.blocks[0].mlp.W_out[0:2, 2] = 1.0
        model.blocks[0].mlp.W_out[2:4, 3] = 1.0
        model.W_U[2, LA] = 1.0
        model.W_U[3, LB] = 1.0
    path = tmp_path / "planted.safetensors"
    save_checkpoint(model, path)
    ref = CheckpointRef(run="planted", seed=0, step=0, path=path, model=kw, processing=Processing(),
                        sha256=file_sha256(path))
    rows_a = [[a, b, LA] for a in (4, 5) for b in (4, 5)]
    rows_b = [[a, b, LB] for a in (6, 7) for b in (6, 7)]
    rows_bg = [[a, b, c] for a in range(4) for b in range(4) for c in (0, 3)]
    tokens = np.array(rows_a + rows_b + rows_bg, dtype=np.int64)
    task_id = np.array([0] * 4 + [1] * 4 + [-1] * len(rows_bg))
    mask = np.zeros((len(tokens), 2), dtype=bool)
    mask[:8, 1] = True
    mask[8:] = True
    return ref, PromptSet(tokens, task_id, mask, ("A", "B"))


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.output = stdout + stderr


def cli(args: list[str]) -> CliResult:
    """``interp ARGS`` in this process: exit status, stdout, stderr (and ``output``, both together)."""
    import contextlib
    import io

    from interp.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:   # argparse's own usage errors
            code = e.code if isinstance(e.code, int) else 2
    return CliResult(code, out.getvalue(), err.getvalue())



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


def ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), by hand: an independent Spearman."""
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r
