"""Peak resident memory of this process, as a benchmark child reports it."""

from __future__ import annotations


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM) in MB.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that figure across ``execve``, so a child started by
    ``subprocess`` reports its *parent's* peak when the parent was larger. That is how benchmarks/correlation.py
    once reported 7.0 GB "whatever the token count" at 2,048 units: the parent held the benchmark's inputs. VmHWM
    belongs to the address space, which ``execve`` replaces."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM (not Linux?)")
