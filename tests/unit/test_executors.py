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


def _interval(job):
    """A job that records when it ran (for the concurrency test; module level, so spawned workers can import it)."""
    import time

    start = time.monotonic()
    time.sleep(0.3)
    return job, start, time.monotonic()


@pytest.mark.parametrize("limit,overlap", [(1, False), (2, True)])
def test_worker_processes_run_at_most_limit_jobs_at_once(limit, overlap):
    from interp.runner.executors import ProcessExecutor

    ex = ProcessExecutor(2)
    try:
        ex.map(_interval, [0, 1])                              # both workers started before timing
        got = ex.map(_interval, list(range(4)), limit=limit)
    finally:
        ex.close()
    assert [g[0] for g in got] == [0, 1, 2, 3]                 # results in job order
    spans = sorted((s, e) for _, s, e in got)
    overlaps = any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert overlaps == overlap


def test_a_stage_runs_as_many_jobs_at_once_as_fit_in_memory(monkeypatch):
    from interp.activations import lockstep
    from interp.runner.run import concurrency

    monkeypatch.setattr(lockstep, "free_memory", lambda device: 20 * 2**30)
    assert concurrency(12 * 2**30, "cpu") == 1               # two 12 GB jobs do not fit in 80% of 20 GB
    assert concurrency(4 * 2**30, "cpu") == 4
    assert concurrency(0, "cpu") is None                       # nothing known: no limit
