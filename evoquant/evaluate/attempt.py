"""One evaluation attempt, made the same way by every back-end.

A genome's objectives must not depend on where it was scored. CPU reductions split
their sums across threads, so the last bits of ``f_cos`` follow the thread count: every
attempt runs with the configured count, in the local back-end and on each Ray worker
alike, and on CUDA with deterministic kernels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from evoquant.archive import FAILED

Configs = Sequence[tuple[int, int]]
Fitness = Callable[[Configs], Mapping[str, Any]]

log = logging.getLogger(__name__)

FAILURES = (RuntimeError, ValueError, FloatingPointError)
"""What a bad configuration raises (NaN guards, CUDA out of memory): a failed genome,
not a bug. Anything else stops the run with its traceback."""


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """``threads`` intra-op threads inside; the caller's count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def deterministic_cuda() -> None:
    """Deterministic CUDA kernels for the rest of this process, where there is CUDA.

    CPU kernels already are deterministic at a fixed thread count; CUDA ones pick
    algorithms by speed and accumulate with atomics. cuBLAS reads its workspace setting
    when it starts, so call this before any CUDA work. Skipped without CUDA, as the
    switch imports several seconds of torch's compiler.
    """
    if not torch.cuda.is_available():
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def attempt(fitness: Fitness, configs: Configs, threads: int) -> dict[str, Any]:
    """The genome's metrics, or ``{"failed": "<error>"}`` when its evaluation raised."""
    try:
        with fixed_threads(threads):
            return dict(fitness(configs))
    except FAILURES as error:
        return {FAILED: f"{type(error).__name__}: {error}"}


@dataclass(frozen=True)
class RetryPolicy:
    """A genome whose evaluation raised is tried ``retries`` more times, then failed.

    Both back-ends ask ``again`` after every attempt, so the rule and its log line are
    the same wherever a genome is scored.
    """

    retries: int = 0

    def again(
        self, bits: Sequence[int], number: int, metrics: Mapping[str, Any]
    ) -> bool:
        """Whether attempt ``number`` (from 1) of ``bits`` failed and gets another try."""
        if FAILED not in metrics:
            return False
        log.warning(
            "genome %s: attempt %d of %d failed: %s",
            list(bits),
            number,
            self.retries + 1,
            metrics[FAILED],
        )
        return number <= self.retries
