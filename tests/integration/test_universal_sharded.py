"""Universal neurons sharded by (seed pair, layer pair): on a generated 4-layer, 3-seed series, the sharded arrays
equal the serial ones bit for bit, here and with the shards running as tasks of a Dask cluster."""

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
    serial = _run(refs, prompts, root)
    small_passes = _run(refs, prompts, root, memory_gb=24 * 24 * 8 * 3 / 2**30)   # three blocks per pass
    sharded = _run(refs, prompts, root, shard=True)
    for name in ARRAYS:
        assert np.array_equal(serial.arrays[name], sharded.arrays[name], equal_nan=True), name
        assert np.array_equal(serial.arrays[name], small_passes.arrays[name], equal_nan=True), name
    assert serial.arrays["max_corr"].shape == (3, 3, 4, 24)


def test_shards_as_dask_tasks_equal_serial(four_layer_series):
    distributed = pytest.importorskip("dask.distributed")
    refs, prompts, root = four_layer_series
    serial = _run(refs, prompts, root)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster, \
            distributed.Client(cluster) as client:
        sharded = client.submit(_run, refs, prompts, root, shard=True, pure=False).result()
    for name in ARRAYS:
        assert np.array_equal(serial.arrays[name], sharded.arrays[name], equal_nan=True), name
