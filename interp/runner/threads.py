"""How many threads torch may use: the cores this process may actually run on, shared among the workers of a run.

``os.cpu_count()`` is the machine's, not the process's: a container limited by a cgroup CPU quota, or a process
pinned to some cores (``taskset``, a batch scheduler), sees every core of the host. torch then starts one OpenMP
thread per host core, and threads beyond the cores the process may use only wait on each other. Worse, OpenMP
threads *spin* while they wait for work by default: two torch processes on the same 2 cores, 2 threads each, spun
against each other and ran 8x slower instead of 2x (measured on the 2-core machines this was written on). So:

- ``usable_cores``: the smallest of the affinity mask, the cgroup quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``),
  and ``os.cpu_count()``;
- ``configure``: ``torch.set_num_threads(usable_cores // workers)`` for a process that shares them with
  ``workers - 1`` others (a local Dask cluster's workers), at least one;
- ``PASSIVE_WAIT``: the environment that makes OpenMP threads sleep instead of spinning while they wait. It only
  works if set before torch is imported, so the ``interp`` command sets it first thing (``interp.cli.entry``); a
  Python user who imports torch first sets ``OMP_WAIT_POLICY=PASSIVE`` themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}
CGROUP = Path("/sys/fs/cgroup")


def cgroup_quota(root: Path = CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), or None when there is none or it is unreadable."""
    try:
        text = (root / "cpu.max").read_text().split()             # cgroup v2: "max 100000" or "150000 100000"
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:                                                           # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask and the cgroup quota, whichever is smaller (at least 1)."""
    n = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        n = min(n, len(os.sched_getaffinity(0)))
    quota = cgroup_quota()
    if quota is not None:
        n = min(n, max(1, int(quota)))
    return max(1, n)


def threads_for(workers: int = 1, requested: int | None = None) -> int:
    """Threads for one of ``workers`` processes sharing this machine's usable cores: ``requested`` when given, else
    ``OMP_NUM_THREADS`` when the environment sets it (a cluster's launcher knows its machine), else the share."""
    if requested is not None:
        return max(1, requested)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, usable_cores() // max(1, workers))


def configure(workers: int = 1, requested: int | None = None) -> int:
    """Set torch's intra-op threads for this process (see ``threads_for``); returns the number set."""
    import torch

    n = threads_for(workers, requested)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def passive_wait_env() -> None:
    """Make OpenMP threads sleep while they wait (before torch is imported; a value the user set is kept)."""
    for key, value in PASSIVE_WAIT.items():
        os.environ.setdefault(key, value)
