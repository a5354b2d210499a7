"""Universal neurons three ways on a generated 4-layer, 3-seed series: from the cache in one process, sharded by
(seed pair, layer pair) (here and as tasks of a Dask cluster), and in lockstep (the seeds' models held together,
nothing on disk). The cached and sharded arrays are equal bit for bit (the same block computations on the same
chunks); lockstep cuts the tokens into other chunks, so its float sums round differently, within the tolerance
interp promises (``Result.differences``), in every memory layout: all seeds at once, pairs in turn, small passes."""

from __future__ import annotations

import numpy as np
import pytest

from interp.activations.cache import CacheSettings
from interp.analyzers.base import Unit
from interp.analyzers.universal_neurons.analyzer import UniversalNeurons
from interp.checkpoints.loading import SLOT, build_model, save_checkpoint
from interp.checkpoints.manifest import CheckpointRef, Processing, file_sha256
from interp.prompts.prompt_set import PromptSet
from interp.prompts.source import PromptSource
from interp.runner.context import Context, ContextSettings
from tests.helpers import tiny_model_kwargs

ARRAYS = ("max_corr", "best_match", "baseline_max", "matched_corr", "excess_corr", "universal")


@pytest.fixture(scope="module")
def four_layer_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("four_layers")
    kw = tiny_model_kwargs(d_vocab=32, d_mlp=24, n_layers=4, n_ctx=8)
    refs = []
    for seed in range(3):
        model = build_model({**kw, "seed": seed})
        path = root / f"seed{seed}.safetensors"
        save_checkpoint(model, path)
        refs.append(CheckpointRef(run="deep", seed=seed, step=0, path=path, model=kw, processing=Processing(),
                                  sha256=file_sha256(path)))
    tokens = np.random.default_rng(0).integers(0, 32, size=(300, 8))
    prompts = PromptSet(tokens, np.full(300, -1), np.ones((300, 7), bool), ())
    return refs, prompts, root


def _run(refs, prompts, root, **cfg):
    ctx = Context(ContextSettings(CacheSettings(root / "cache", batch_size=64), "cpu", PromptSource(fixed=prompts)))
    analyzer = UniversalNeurons(UniversalNeurons.config_from({"chunk_tokens": 70 * 8, **cfg}))
    for ref in refs:
        ctx.ensure(ref, analyzer.needs(ref))
    result = analyzer.run(Unit(analyzer.name, tuple(refs)), ctx)
    SLOT.clear()
    return result


def test_sharded_equals_serial_bit_for_bit(four_layer_series):
    refs, prompts, root = four_layer_series
    serial = _run(refs, prompts, root, lockstep=False)
    small_passes = _run(refs, prompts, root, lockstep=False, memory_gb=24 * 24 * 8 * 3 / 2**30)   # 3 blocks a pass
    sharded = _run(refs, prompts, root, shard=True)
    for name in ARRAYS:
        assert np.array_equal(serial.arrays[name], sharded.arrays[name], equal_nan=True), name
        assert np.array_equal(serial.arrays[name], small_passes.arrays[name], equal_nan=True), name
    assert serial.arrays["max_corr"].shape == (3, 3, 4, 24)


def _numbers(r):
    """The result's arrays and numbers alone (its config and bookkeeping scalars name the path taken)."""
    from interp.analyzers.universal_neurons.analyzer import UniversalNeuronsResult

    keep = ("universal_fraction", "mean_excess_corr", "mean_max_corr", "mean_baseline", "universal_fraction_per_layer")
    return UniversalNeuronsResult(r.analyzer, r.unit_id, {}, dict(r.arrays), dict(r.dims),
                                  {k: r.scalars[k] for k in keep})


def test_lockstep_gives_the_cached_numbers_without_writing_to_disk(four_layer_series, monkeypatch):
    from interp.activations import lockstep

    refs, prompts, root = four_layer_series
    cached = _run(refs, prompts, root, lockstep=False)
    written = sum(f.stat().st_size for f in (root / "cache").rglob("*") if f.is_file())
    streamed = _run(refs, prompts, root.parent / "lockstep")
    assert not list((root.parent / "lockstep").rglob("*.h5"))                     # nothing per token on disk
    assert written > 0 and streamed.scalars["models_held"] == 3
    assert _numbers(cached).differences(_numbers(streamed)) == []
    monkeypatch.setattr(lockstep.ModelGroup, "fits", staticmethod(lambda size, n, device: n <= 2))
    pairs = _run(refs, prompts, root.parent / "pairs", memory_gb=24 * 24 * 8 * 3 / 2**30)
    assert pairs.scalars["models_held"] == 2 and _numbers(cached).differences(_numbers(pairs)) == []


def test_shards_as_dask_tasks_equal_serial(four_layer_series):
    distributed = pytest.importorskip("dask.distributed")
    refs, prompts, root = four_layer_series
    serial = _run(refs, prompts, root, lockstep=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster, \
            distributed.Client(cluster) as client:
        sharded = client.submit(_run, refs, prompts, root, shard=True, pure=False).result()
    for name in ARRAYS:
        assert np.array_equal(serial.arrays[name], sharded.arrays[name], equal_nan=True), name
