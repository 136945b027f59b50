"""The in-process back-end: evaluates genomes one after another in the driver."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

from evoquant.evaluate.attempt import Fitness, RetryPolicy, attempt
from evoquant.targets import ToConfigs


class LocalEvaluator(AbstractContextManager):
    """Runs the fitness in this process, with the thread count a Ray worker would use.

    A genome that raises is tried ``retries`` more times, then recorded as failed.
    """

    def __init__(
        self,
        fitness: Fitness,
        to_configs: ToConfigs,
        threads: int = 1,
        retries: int = 0,
    ):
        self.fitness = fitness
        self.to_configs = to_configs
        self.threads = threads
        self.policy = RetryPolicy(retries)

    def __exit__(self, *exc: object) -> None:
        """Nothing to release: the fitness lives as long as the driver."""

    def evaluate(self, genomes: list[list[int]]) -> Iterator[tuple[list[int], dict]]:
        for key in dict.fromkeys(tuple(g) for g in genomes):
            bits = list(key)
            configs = self.to_configs(bits)
            number = 1
            metrics = attempt(self.fitness, configs, self.threads)
            while self.policy.again(bits, number, metrics):
                number += 1
                metrics = attempt(self.fitness, configs, self.threads)
            yield bits, metrics
