"""Progress of calibration and the alpha search on stderr: stage, layer, bit config, ETA.

Building a table runs for minutes on a large model, long before the search's own
progress bar starts. The work is counted in layer forwards (one per batch and layer
in stage 1, one per alpha tried in stage 2), and a line is written at most every
``INTERVAL_S`` seconds, plus one when the table is done, so a long build says a few
lines per minute however many batches and layers it has.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

INTERVAL_S = 10.0
"""Seconds between two progress lines."""


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class CalibrationProgress:
    """Counts units of work done out of ``total`` and reports where the build is."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = sys.stderr,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = max(total, 1)
        self.stream = stream
        self.interval = INTERVAL_S if interval is None else interval
        self.clock = clock
        self.start = self.last = clock()
        self.done = 0
        self.lines = 0

    def step(self, units: int, where: str) -> None:
        """``units`` more forwards done, the last in ``where`` (stage, layer, config)."""
        self.done += units
        now = self.clock()
        due = self.lines == 0 or now - self.last >= self.interval
        if self.stream is not None and due:
            self._write(where, now)

    def _write(self, where: str, now: float) -> None:
        share = min(self.done / self.total, 0.99)
        elapsed = now - self.start
        eta = _duration(elapsed / share * (1 - share)) if share > 0 else "?"
        print(
            f"calibration: {where}: {share:.0%} done, {_duration(elapsed)} elapsed, "
            f"ETA {eta}",
            file=self.stream,
            flush=True,
        )
        self.last = now
        self.lines += 1

    def finish(self) -> None:
        if self.stream is not None:
            elapsed = _duration(self.clock() - self.start)
            print(f"calibration: done in {elapsed}", file=self.stream, flush=True)
