"""Threads from the cores a process may use: the affinity mask and the cgroup quota, shared among local workers;
an explicit request or OMP_NUM_THREADS wins."""

from __future__ import annotations

import os

from interp.runner import threads


def test_the_cgroup_quota_is_read_in_cores(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert threads.cgroup_quota(v1) == 3.0
    assert threads.cgroup_quota(tmp_path / "missing") is None


def test_threads_share_the_usable_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    assert threads.threads_for(1) == 8 and threads.threads_for(3) == 2 and threads.threads_for(16) == 1
    assert threads.threads_for(2, requested=5) == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.threads_for(1) == 3


def test_usable_cores_never_exceed_the_affinity_mask():
    if hasattr(os, "sched_getaffinity"):
        assert 1 <= threads.usable_cores() <= len(os.sched_getaffinity(0))


def test_the_command_makes_openmp_wait_passively(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    threads.passive_wait_env()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.passive_wait_env()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"   # a user's own choice is kept


def test_a_small_run_stays_in_this_process_unless_workers_are_asked_for(series, tmp_path, monkeypatch):
    """Spawning workers costs seconds of imports: a tiny series runs in-process by default, not when --workers
    says otherwise, and the bundled series (trillions of FLOPs) still gets its worker processes."""
    import json

    import interp
    from interp.api import plan_run, too_small_for_workers

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for asked, expect in ((None, 1), (2, 2)):
        out = tmp_path / f"o{asked}"
        interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=out, progress=False,
                                                                           workers=asked))
        record = json.loads((out / "run.json").read_text())["options"]
        assert record["workers"] == expect and record["threads"] == 2 // expect
    plan, cost = plan_run(series, None, options=interp.RunOptions(progress=False))
    assert too_small_for_workers(plan, cost)
    plan, cost = plan_run(None, None, options=interp.RunOptions(progress=False))
    assert cost["TOTAL"].flops > 1e12 and not too_small_for_workers(plan, cost)
