"""The in-process back-end: evaluates genomes one after another in the driver."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch

from evoquant.evaluate.fitness import GenomeFitness
from evoquant.space import SearchSpace

log = logging.getLogger(__name__)


class LocalEvaluator:
    """Runs ``GenomeFitness`` in this process; a genome that raises is recorded as failed."""

    def __init__(
        self, fitness: GenomeFitness, space: SearchSpace, threads: int | None = None
    ):
        self.fitness = fitness
        self.space = space
        self.threads = threads

    def evaluate(self, genomes: list[list[int]]) -> Iterator[tuple[list[int], dict]]:
        if self.threads:
            torch.set_num_threads(self.threads)
        for bits in genomes:
            try:
                metrics = self.fitness(self.space.bit_configs(bits))
            except (RuntimeError, ValueError, FloatingPointError) as error:
                log.warning("genome %s failed: %s", bits, error)
                metrics = {"failed": f"{type(error).__name__}: {error}"}
            yield bits, metrics
