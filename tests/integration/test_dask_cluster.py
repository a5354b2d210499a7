"""An existing Dask cluster: a scheduler and two workers started as separate processes (the ``dask scheduler`` and
``dask worker`` commands), reached through ``--dask-address``. Results equal the serial run's within the tolerance
interp promises across thread counts (the workers run one thread each, the serial run two: float sums are taken in
another order; ``Result.differences``), also when a worker is killed mid-run (its job goes to the other worker;
complete units are not redone)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import interp
from interp.analyzers import registry
from interp.results import load_results

pytestmark = pytest.mark.slow   # seconds to minutes each: left out of the edit-test loop

pytest.importorskip("dask.distributed")
ANALYZERS = ["neuron-stats", "universal-neurons"]
RUNS = ("narrow",)


def _dask_command() -> str:
    exe = Path(sys.executable).with_name("dask")
    if not exe.is_file():
        if os.environ.get("CI"):   # the [test] extra installs it: in CI a skip would hide a broken install
            pytest.fail("the dask command is not installed beside this Python")
        pytest.skip("the dask command is not installed beside this Python")
    return str(exe)


@pytest.fixture
def cluster(tmp_path):
    dask = _dask_command()
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(sched_file), "--port", "0",
                               "--dashboard-address", ":0", "--no-show"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    deadline = time.time() + 60
    while not sched_file.is_file() and time.time() < deadline:
        time.sleep(0.2)
    workers = [subprocess.Popen([dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                                 "--nworkers", "1", "--no-dashboard", "--death-timeout", "60"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    procs += workers
    address = json.loads(sched_file.read_text())["address"]
    from dask.distributed import Client

    with Client(address, timeout="60s") as c:
        c.wait_for_workers(2, timeout=120)
    yield address, workers
    for p in procs:
        p.kill()
        p.wait()


def _serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    interp.analyze(None, ANALYZERS, options=interp.RunOptions(out_dir=out, runs=RUNS, progress=False))
    return out


def _same(a: Path, b: Path) -> None:
    for name in ANALYZERS:
        x = {r.unit_id: r for r in load_results(a, name, result_class=registry.get(name).Result)}
        y = {r.unit_id: r for r in load_results(b, name, result_class=registry.get(name).Result)}
        assert x.keys() == y.keys() and x
        for k in x:
            assert not x[k].differences(y[k]), f"{name} {k}: {x[k].differences(y[k])}"


def test_an_existing_cluster_gives_the_serial_results(cluster, tmp_path, tmp_path_factory):
    address, _ = cluster
    out = tmp_path / "dask"
    report = interp.analyze(None, ANALYZERS, options=interp.RunOptions(out_dir=out, runs=RUNS, progress=False,
                                                                        dask_address=address))
    assert report.failed == [] and report.ran == 24 + 8
    _same(_serial(tmp_path_factory), out)


def test_a_killed_worker_does_not_change_the_results(cluster, tmp_path, tmp_path_factory):
    address, workers = cluster
    out = tmp_path / "dask"
    box = {}

    def run():
        box["report"] = interp.analyze(None, ANALYZERS, options=interp.RunOptions(
            out_dir=out, runs=RUNS, progress=False, dask_address=address, retries=3))

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "neuron-stats").rglob("step*.json"))) < 3:
        time.sleep(0.05)
    workers[0].send_signal(signal.SIGKILL)
    t.join(600)
    assert not t.is_alive()
    assert box["report"].failed == []
    _same(_serial(tmp_path_factory), out)
