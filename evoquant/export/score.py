"""The deployed genome re-scored: what TensorRT will run, measured like the search measured the front.

Promotions change the numerics (an INT2 gene runs as INT4 weight-only, with FP16
activations) and a thesis-scheme run is recalibrated with symmetric scales, so the
front point's error is not the deployed model's. The deployed configurations are
scored through the same ``GenomeFitness`` as the search (same error objective, same
thread count), with the deployment table, on the fitness batches and, when the
problem has them, on the held-out validation batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from evoquant.config import RunConfig
from evoquant.evaluate.fitness import scoring
from evoquant.problem import Problem
from evoquant.quant.layers import Layer
from evoquant.quant.table import QuantTable
from evoquant.targets import BitConfig

DATA = {
    "fitness": "fitness batches (the data the search minimised its error on)",
    "heldout": "validation batches (held out: no search decision saw them)",
}
"""What each score was measured on, as the report says it."""


def score_configs(
    problem: Problem,
    model: nn.Module,
    layers: Sequence[Layer],
    table: QuantTable,
    configs: Sequence[BitConfig],
    config: RunConfig,
) -> dict[str, dict[str, Any]]:
    """``configs``' metrics per data role (``fitness``, and ``heldout`` when there is one)."""
    roles = {"fitness": problem.fitness_batches, "heldout": problem.validation_batches}
    scores = {}
    for role, batches in roles.items():
        if not batches:
            continue
        with scoring(problem, model, table, layers, config, batches) as score:
            scores[role] = score(configs)
    return scores
