"""One batch's forward under random genomes, against FP32 and a baseline model.

Shared by the benches that price an evaluation (``eval_overhead``) or attention
routing (``attention_routing``): both time the same three forwards, interleaved.
"""

from __future__ import annotations

import numpy as np
import torch
from timing import interleaved_medians

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.problem import Problem
from evoquant.quant.layers import Layer, find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import build_quant_table

BITS = (2, 4, 8, 16)
WARMUP = 3


def time_genomes(
    problem: Problem,
    model: torch.nn.Module,
    baseline: torch.nn.Module,
    repeats: int,
    seed: int,
) -> tuple[list[Layer], dict[str, dict[str, float]]]:
    """Wrap ``model`` (table from one calibration batch, alpha off: it does not change
    the cost) and return its layers and the median wall
    and CPU seconds of ``fp32`` (``apply(None)`` + forward), ``genome`` (``apply``
    of a random genome, drawn before timing, + forward) and ``baseline`` (forward of
    the other model)."""
    layers = find_layers(model)
    table = build_quant_table(
        model,
        layers,
        problem.run,
        problem.calibration_batches[:1],
        QuantConfig(alpha=AlphaConfig(enabled=False)),
    )
    quantized = QuantizedModel(model, table)
    batch = problem.fitness_batches[0]
    rng = np.random.default_rng(seed)
    genomes = iter(
        [
            [int(b) for b in rng.choice(BITS, len(layers))]
            for _ in range(WARMUP + repeats)
        ]
    )

    def forward(net: torch.nn.Module) -> None:
        with torch.no_grad():
            problem.run(net, batch)

    def fp32() -> None:
        quantized.apply(None)
        forward(model)

    def genome() -> None:
        quantized.apply(next(genomes))
        forward(model)

    medians = interleaved_medians(
        {"fp32": fp32, "genome": genome, "baseline": lambda: forward(baseline)},
        repeats,
        WARMUP,
    )
    quantized.remove()
    return layers, medians
