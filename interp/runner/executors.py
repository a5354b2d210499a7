"""Where work units run: in this process (default) or on a Dask cluster (a ``LocalCluster`` interp starts, or an
existing scheduler at ``address``).

A job is a picklable description (checkpoint refs, analyzer names and configs, output and cache folders), so the same
job runs anywhere with a shared filesystem: every worker must see the checkpoints, the cache folder and ``--out`` at
the same paths. Jobs of one stage are independent; stages run in order (checkpoint jobs, then jobs over groups of
seeds). Resume comes from the completion markers on disk, not from the engine: a job skips units whose results are
complete, so a job retried after its worker died redoes only what it had not saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Failure:
    job: str
    error: str


class Executor(Protocol):
    failures: list[Failure]

    def map(self, fn: Callable[..., Any], jobs: Sequence[Any], desc: str = "", names: Sequence[str] | None = None,
            progress: Any = None, limit: int | None = None) -> list[Any]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Runs jobs one after another in this process; the first error stops the run (it is the user's to fix)."""

    def close(self) -> None:
        pass

    def __init__(self, progress: bool = True):
        self.progress = progress
        self.failures: list[Failure] = []

    def map(self, fn, jobs, desc: str = "", names=None, progress=None, limit: int | None = None) -> list:
        """``fn(job, progress)`` for each job when a ``progress`` (``interp.runner.progress.Progress``) is given: it
        hears every unit; otherwise a plain bar over jobs."""
        if progress is not None:
            return [fn(j, progress) for j in jobs]
        from tqdm.auto import tqdm

        return [fn(j) for j in tqdm(jobs, desc=desc, disable=not self.progress or not jobs)]


class DaskExecutor:
    """Runs jobs on ``dask.distributed``: an existing scheduler (``address``, e.g. ``tcp://head:8786``), a given
    ``client``, or a ``LocalCluster`` of ``n_workers`` single-threaded processes. Each job is retried ``retries``
    times (a worker that dies mid-job hands it to another; complete units are skipped on the retry); a job that
    still fails is recorded in ``failures`` by name and the others go on. ``resources`` tags every job (e.g.
    ``{"GPU": 1}``: only workers started with ``--resources GPU=1`` take it, one at a time)."""

    def __init__(self, client: Any = None, address: str | None = None, retries: int = 2,
                 resources: dict[str, float] | None = None, n_workers: int = 2):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as e:
            from interp.errors import ConfigError

            raise ConfigError("the dask executor needs 'pip install interp[distributed]'") from e
        self._own = client is None
        if client is None and address:
            try:
                client = Client(address, timeout="30s")
            except OSError as e:
                from interp.errors import ConfigError

                raise ConfigError(f"--dask-address {address}: no Dask scheduler answered ({e})") from None
        self.client = client or Client(LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True))
        self._local = client is None or not address
        self.retries, self.resources = retries, resources
        self.failures: list[Failure] = []

    def map(self, fn, jobs, desc: str = "", names=None, progress=None, limit: int | None = None) -> list:
        """Jobs run on the workers without a progress object (it lives here); it advances as each job returns.
        A job that still fails after its retries is recorded in ``failures`` and left out of the results."""
        from dask.distributed import as_completed

        if not jobs:
            return []
        jobs = list(jobs)
        names = list(names or [f"{desc} job {i}" for i in range(len(jobs))])
        futures = {self.client.submit(fn, job, retries=self.retries, resources=self.resources, pure=False,
                                      key=f"interp-{desc.replace(' ', '-')}-{i}-{id(job):x}"): i
                   for i, job in enumerate(jobs)}
        results: list[Any] = [None] * len(jobs)
        for future in as_completed(futures):
            i = futures[future]
            if future.status == "finished":
                results[i] = future.result()
                if progress is not None:
                    progress.job_done(jobs[i])
            else:
                error = future.exception()
                self.failures.append(Failure(names[i], f"{type(error).__name__}: {error}"))
        return [r for r in results if r is not None]

    def close(self) -> None:
        if self._own:
            cluster = getattr(self.client, "cluster", None)
            self.client.close()
            if cluster is not None and self._local:
                cluster.close()


class ProcessExecutor:
    """Runs the jobs of a stage on ``workers`` processes of this machine, each with its share of the cores
    (``RunOptions.threads``): tiny models spend most of a forward pass in Python and per-call overhead, which threads
    do not share but processes do. Started fresh (``spawn``: a forked torch is not safe); the first error stops the
    run, as in a serial run."""

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from interp.runner.threads import PASSIVE_WAIT

        self.workers = workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_env, initargs=(PASSIVE_WAIT,))
        self.failures: list[Failure] = []

    def map(self, fn, jobs, desc: str = "", names=None, progress=None, limit: int | None = None) -> list:
        """``fn(job)`` for every job, at most ``limit`` (default: ``workers``) at a time: a stage whose jobs each
        hold much memory runs fewer side by side (``interp.runner.run.concurrency``)."""
        from concurrent.futures import FIRST_COMPLETED, wait

        limit = max(1, min(limit or self.workers, self.workers))
        results: list[Any] = [None] * len(jobs)
        queue, running = list(enumerate(jobs)), {}
        try:
            while queue or running:
                while queue and len(running) < limit:
                    i, job = queue.pop(0)
                    running[self.pool.submit(fn, job)] = i
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    i = running.pop(future)
                    results[i] = future.result()
                    if progress is not None:
                        progress.job_done(jobs[i])
        except BaseException:
            for f in running:
                f.cancel()
            raise
        return results

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def _worker_env(env: dict[str, str]) -> None:
    import os

    for key, value in env.items():
        os.environ.setdefault(key, value)
    _die_with_parent()


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the process that started it dies: a run killed outright (SIGKILL, the
    OOM killer) must not leave workers computing, and writing results, behind it. Elsewhere a worker notices at its
    next job."""
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def executor_for(options: Any, progress: bool = True) -> Executor:
    """The one place an executor is chosen: a Dask client on ``options.dask_address``, a local Dask cluster for
    ``options.dask``, else this process. The caller closes it (``close``) when the run ends."""
    if options.dask_address is not None:
        return DaskExecutor(address=options.dask_address, retries=options.retries,
                            resources={"GPU": 1} if options.device.startswith("cuda") else None)
    if options.dask:
        return DaskExecutor(retries=options.retries)
    if options.workers > 1:
        return ProcessExecutor(options.workers)
    return SerialExecutor(progress=progress)
