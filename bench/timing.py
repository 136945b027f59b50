"""Interleaved timing: variants run in turn, so that the machine's load falls on all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved_medians(
    variants: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 3,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, float]]:
    """Median wall and process-CPU seconds of each variant over ``repeats`` rounds.

    Each round runs every variant once, in order, after ``warmup`` untimed rounds.
    ``sync`` (``torch.cuda.synchronize`` on a GPU) runs before each clock reading, so
    that queued device work is counted where it was issued.
    """
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for i in range(warmup + repeats):
        for name, run in variants.items():
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            sync()
            if i >= warmup:
                samples[name].append(
                    (time.perf_counter() - wall, time.process_time() - cpu)
                )
    return {
        clock: {
            name: statistics.median(s[index] for s in runs)
            for name, runs in samples.items()
        }
        for index, clock in enumerate(("wall", "cpu"))
    }
