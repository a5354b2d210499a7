"""One progress bar over every unit of an ``analyze`` call: how many are done, which analyzer and checkpoint is
running, and an ETA. Quiet when stderr is not a terminal (logs, CI, tests) or with ``--quiet``."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class Progress:
    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None):
        stream = stream if stream is not None else sys.stderr
        self.bar: Any = None
        if enabled and total > 0 and getattr(stream, "isatty", lambda: False)():
            import shutil

            from tqdm import tqdm

            # the size once, with a fallback: tqdm draws nothing on a terminal that reports 0 rows or columns
            size = shutil.get_terminal_size((100, 20))
            self.bar = tqdm(total=total, unit="unit", file=stream, ncols=size.columns, nrows=size.lines or 20,
                            desc="analyze",
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} units "
                                       "[{elapsed}<{remaining}{postfix}]")

    def working(self, what: str, unit: str) -> None:
        """Say what runs now (an analyzer, or caching) and on which checkpoint or unit."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"{what} · {unit}", refresh=True)

    def done(self, n: int = 1) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def job_done(self, job: Any) -> None:
        """A whole job finished elsewhere (a Dask worker): all of its units, named by its first checkpoint."""
        if self.bar is not None:
            self.working(", ".join(a.name for a in job.analyzers + job.tapped), job.refs[0].id)
            self.done(len(job.analyzers) + len(job.tapped) * len(job.refs))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
