"""Shared fixtures. Tiers: unit tests build their own tiny inputs with known answers; integration tests use the
checkpoints bundled with the package (``interp/data/bundled``), which are the regression set."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def bundled():
    from interp.api import load_series

    return load_series(None)


@pytest.fixture(scope="session")
def wide_ref(bundled):
    """The last checkpoint of the wide competition model, seed 0."""
    return max(bundled.refs(run="wide", seed=0), key=lambda r: r.step)


@pytest.fixture(scope="session")
def narrow_ref(bundled):
    return max(bundled.refs(run="narrow", seed=0), key=lambda r: r.step)


def tiny_model_kwargs(d_vocab: int = 20, d_mlp: int = 16, n_layers: int = 1, **kw) -> dict:
    return {**dict(n_layers=n_layers, d_model=16, d_mlp=d_mlp, n_heads=2, d_head=8, n_ctx=3, d_vocab=d_vocab,
                   act_fn="relu", normalization_type=None), **kw}


def tiny_mixture():
    from interp.tasks import MixtureSpec, TaskSpec

    return MixtureSpec(d_vocab=20, n_background=8, tasks=(
        TaskSpec("a", "lookup", n_operands=3, n_labels=2, frequency=0.3, seed=1),
        TaskSpec("b", "lookup", n_operands=3, n_labels=2, frequency=0.1, seed=2)))


def tiny_train_config(run: str = "tiny", seed: int = 0, n_steps: int = 20, **kw):
    from interp.training import TrainConfig

    return TrainConfig(run=run, model=tiny_model_kwargs(), mixture=tiny_mixture(), seed=seed, n_steps=n_steps,
                       batch_size=64, n_checkpoints=4, **kw)


@pytest.fixture(scope="session")
def tiny_series_dir(tmp_path_factory):
    """A freshly trained tiny series: run 'tiny', seeds 0 and 1, 4 steps each (a few seconds)."""
    from interp.training import train

    out = tmp_path_factory.mktemp("tiny_series")
    for seed in (0, 1):
        train(tiny_train_config(seed=seed), out, progress=False)
    return out


@pytest.fixture
def series(tiny_series_dir, tmp_path):
    """A private copy of the tiny series (run 'tiny', seeds 0-1, steps 0, 1, 4, 20) that a test may damage."""
    import shutil

    d = tmp_path / "series"
    shutil.copytree(tiny_series_dir, d)
    return d


@pytest.fixture
def outside(tmp_path):
    """A folder outside both the series and the output; fault tests assert it stays empty."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def bundled_results(tmp_path_factory):
    """``interp analyze`` with no arguments (every registered analyzer on the bundled series), run once per session."""
    import interp

    out = tmp_path_factory.mktemp("interp-results")
    report = interp.analyze(options=interp.RunOptions(out_dir=out, progress=False))
    return report


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

    from interp.loading import build_model, save_checkpoint
    from interp.manifest import Processing
    from interp.manifest import CheckpointRef, file_sha256
    from interp.tasks import PromptSet

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
