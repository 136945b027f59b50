"""One genome -> its metrics, at the cost of one forward pass over the fitness batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from evoquant.config import RunConfig
from evoquant.errors import UserError
from evoquant.evaluate.attempt import Configs, attempt, fixed_threads
from evoquant.pipeline import check_compilable
from evoquant.problem import Problem
from evoquant.quant.layers import Layer
from evoquant.quant.model import Gene, QuantizedModel
from evoquant.quant.table import QuantTable
from fitness.bits import bit_metrics
from fitness.cosine import f_cos


class GenomeFitness:
    """Scores genomes against FP32 reference outputs computed once, at construction.

    Metrics: the bit cost (``f_bits`` and its ratios), ``f_cos`` (tensor outputs),
    the problem's error metrics, ``error`` (the one named by ``error``, the run's
    error objective) and whatever the problem's task metric reports. ``batches``
    are the problem's fitness batches unless given (``evoquant validate`` scores the
    validation batches through this same code). ``compiled`` runs the model through
    ``torch.compile`` (``evaluator.compile``); the references are made the same way,
    so the all-FP32 genome scores zero error either way.
    """

    def __init__(
        self,
        problem: Problem,
        model: nn.Module,
        table: QuantTable,
        layers: Sequence[Layer],
        error: str = "f_cos",
        batches: Sequence | None = None,
        compiled: bool = False,
    ):
        self.problem = problem
        self.layers = list(layers)
        self.error = error
        self.batches = problem.fitness_batches if batches is None else batches
        if compiled:
            check_compilable(problem, model)
        parts = [part.module for part in problem.export_parts]
        self.quantized = QuantizedModel(model, table, compiled, parts)
        self.reference, _ = self.outputs(None)
        available = self.error_metrics(self.reference)
        if error not in available:
            self.quantized.remove()
            raise UserError(f"error metric {error!r} is not one of {sorted(available)}")

    def error_metrics(self, outputs: Sequence) -> dict[str, float]:
        """Every error of ``outputs`` against the FP32 reference."""
        metrics = {}
        if all(isinstance(out, torch.Tensor) for out in outputs):
            metrics["f_cos"] = f_cos(self.reference, outputs)
        if self.problem.error_metrics is not None:
            metrics |= self.problem.error_metrics(self.reference, outputs)
        return metrics

    def outputs(self, genome: Sequence[Gene] | None) -> tuple[list, list]:
        """The model's outputs on the batches under ``genome`` and its resolved configs."""
        configs = self.quantized.apply(genome)
        with torch.no_grad():
            outputs = [
                self.problem.run(self.quantized.runnable, batch)
                for batch in self.batches
            ]
        return outputs, configs

    def __call__(self, genome: Sequence[Gene] | None) -> dict[str, float]:
        outputs, configs = self.outputs(genome)
        metrics = bit_metrics(
            self.layers, [None if c is None else c[0] for c in configs]
        )
        metrics |= self.error_metrics(outputs)
        metrics["error"] = metrics[self.error]
        if self.problem.task_metric is not None:
            metrics |= self.problem.task_metric(outputs, self.batches)
        return metrics


@contextmanager
def scoring(
    problem: Problem,
    model: nn.Module,
    table: QuantTable,
    layers: Sequence[Layer],
    config: RunConfig,
    batches: Sequence,
) -> Iterator[Callable[[Configs], dict[str, Any]]]:
    """Score configurations after a search (validation, export) as the search scored
    them: the run's error objective, the FP32 references and every attempt at its
    thread count, a failure recorded as ``{"failed": ...}``; the quantizer leaves
    ``model`` on exit."""
    threads = config.evaluator.threads_per_worker
    with fixed_threads(threads):
        fitness = GenomeFitness(
            problem,
            model,
            table,
            layers,
            config.error,
            batches,
            compiled=config.evaluator.compile,
        )
    try:
        yield lambda configs: attempt(fitness, list(configs), threads)
    finally:
        fitness.quantized.remove()
