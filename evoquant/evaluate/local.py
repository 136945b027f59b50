"""The in-process back-end: evaluates genomes one after another in the driver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager

from evoquant.archive import FAILED
from evoquant.evaluate.attempt import Fitness, attempt
from evoquant.space import SearchSpace

log = logging.getLogger(__name__)


class LocalEvaluator(AbstractContextManager):
    """Runs the fitness in this process, with the thread count a Ray worker would use.

    A genome that raises is tried ``retries`` more times, then recorded as failed.
    """

    def __init__(
        self, fitness: Fitness, space: SearchSpace, threads: int = 1, retries: int = 0
    ):
        self.fitness = fitness
        self.space = space
        self.threads = threads
        self.retries = retries

    def __exit__(self, *exc: object) -> None:
        """Nothing to release: the fitness lives as long as the driver."""

    def evaluate(self, genomes: list[list[int]]) -> Iterator[tuple[list[int], dict]]:
        for key in dict.fromkeys(tuple(g) for g in genomes):
            bits = list(key)
            configs = self.space.bit_configs(bits)
            for number in range(1, self.retries + 2):
                metrics = attempt(self.fitness, configs, self.threads)
                if FAILED not in metrics:
                    break
                log.warning(
                    "genome %s: attempt %d of %d failed: %s",
                    bits,
                    number,
                    self.retries + 1,
                    metrics[FAILED],
                )
            yield bits, metrics
