"""The same units fan out on Dask and give the same results as the serial run."""

import pytest

import interp
from interp.results import load_results


def test_dask_local_cluster_equals_serial(tiny_series_dir, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    from interp.runner.executors import DaskExecutor

    serial, fanned = tmp_path / "serial", tmp_path / "dask"
    names = ["neuron-stats", "universal-neurons"]
    interp.analyze(tiny_series_dir, names, options=interp.RunOptions(out_dir=serial, progress=False))
    client = distributed.Client(distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                                         dashboard_address=None))
    try:
        report = interp.analyze(tiny_series_dir, names, options=interp.RunOptions(out_dir=fanned, progress=False),
                                executor=DaskExecutor(client))
    finally:
        client.close()
        client.cluster.close()
    assert report.ran == 8 + 4
    for name in names:
        a = {r.unit_id: r for r in load_results(serial, name)}
        b = {r.unit_id: r for r in load_results(fanned, name)}
        assert a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)
