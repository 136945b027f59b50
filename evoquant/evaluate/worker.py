"""What one Ray worker process runs: build the problem once, then score genomes on request.

The class is plain Python; ``ray_backend`` turns it into an actor. Everything it is
given is a plain value (a problem name and arguments, the driver's layer list, the
table as arrays), so a worker on another node rebuilds exactly what the driver has.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from evoquant.errors import UserError
from evoquant.evaluate.attempt import (
    Configs,
    Fitness,
    attempt,
    deterministic_cuda,
    fixed_threads,
)
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.evaluate.shared_table import from_arrays
from evoquant.pipeline import prepare_model
from evoquant.problem import build_problem
from evoquant.quant.layers import Layer
from evoquant.quant.table import QuantTable

MakeFitness = Callable[[QuantTable], Fitness]


@dataclass(frozen=True)
class FitnessFactory:
    """Builds the run's ``GenomeFitness`` in the calling process (model, data, FP32 references).

    ``layers`` comes from the driver rather than from a new layer search, so genes map to
    the same layers on every worker; ``attention`` (``layers.attention``) makes the
    model's attention products the layers the driver found.
    """

    problem: str
    args: dict[str, Any]
    layers: Sequence[Layer]
    error: str
    attention: str = "auto"
    compiled: bool = False

    def __call__(self, table: QuantTable) -> GenomeFitness:
        problem = build_problem(self.problem, self.args)
        model = prepare_model(problem, self.attention)
        return GenomeFitness(
            problem, model, table, self.layers, self.error, compiled=self.compiled
        )


@dataclass(frozen=True)
class WorkerState:
    """A worker's answer to ``ping``: where it runs, or why it cannot evaluate."""

    pid: int
    host: str
    error: str | None = None


class EvaluationWorker:
    """Holds one fitness for the life of its process; answers one genome per call."""

    def __init__(self, factory: MakeFitness, table: QuantTable, threads: int):
        """``table`` holds numpy arrays (``to_arrays``): the object store's shared copy."""
        deterministic_cuda()  # before the problem puts anything on a GPU
        torch.set_num_threads(threads)  # the process is ours: N workers share the cores
        self.threads = threads
        self.error: str | None = None
        with fixed_threads(threads):
            try:
                self.fitness = factory(from_arrays(table))
            except UserError as error:
                # the config is wrong for every worker alike: the driver reports it once
                self.error = str(error)

    def ping(self) -> WorkerState:
        return WorkerState(os.getpid(), socket.gethostname(), self.error)

    def evaluate(self, configs: Configs) -> dict[str, Any]:
        return attempt(self.fitness, configs, self.threads)
