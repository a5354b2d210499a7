"""Where work units run: in this process (default) or on a Dask cluster.

A job is a picklable description (checkpoint refs, analyzer names and configs, output and cache folders), so the same
job runs anywhere with a shared filesystem. Jobs of one stage are independent; stages run in order (checkpoint jobs,
then jobs over groups of seeds). Resume comes from the completion markers on disk, not from the engine: a job
skips units whose results are complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Executor(Protocol):
    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], desc: str = "") -> list[Any]: ...


class SerialExecutor:
    def __init__(self, progress: bool = True):
        self.progress = progress

    def map(self, fn, jobs, desc: str = "") -> list:
        from tqdm.auto import tqdm

        return [fn(j) for j in tqdm(jobs, desc=desc, disable=not self.progress or not jobs)]


class DaskExecutor:
    """Runs jobs on a ``dask.distributed`` client (a ``LocalCluster`` when none is given). ``resources`` tags each
    job (e.g. ``{"GPU": 1}``) so a GPU worker takes one at a time; failed jobs are retried ``retries`` times."""

    def __init__(self, client: Any = None, retries: int = 1, resources: dict[str, float] | None = None,
                 n_workers: int = 2):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as e:
            from interp.errors import ConfigError

            raise ConfigError("the dask executor needs 'pip install interp[distributed]'") from e
        self._own = client is None
        self.client = client or Client(LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True))
        self.retries, self.resources = retries, resources

    def map(self, fn, jobs, desc: str = "") -> list:
        if not jobs:
            return []
        futures = self.client.map(fn, list(jobs), retries=self.retries, resources=self.resources, pure=False)
        return self.client.gather(futures)

    def close(self) -> None:
        if self._own:
            cluster = self.client.cluster
            self.client.close()
            cluster.close()
