"""One batch's forward under random genomes, against FP32 and a baseline model.

Shared by the benches that price an evaluation (``eval_overhead``) or attention
routing (``attention_routing``): both time the same three forwards, interleaved.
"""

from __future__ import annotations

import time
from typing import Any

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
    compiled: torch.nn.Module | None = None,
) -> tuple[list[Layer], dict[str, Any]]:
    """Wrap ``model`` (table from one calibration batch, alpha off: it does not change
    the cost) and return its layers and the median wall
    and CPU seconds of ``fp32`` (``apply(None)`` + forward), ``genome`` (``apply``
    of a random genome, drawn before timing, + forward) and ``baseline`` (forward of
    the other model). A ``compiled`` copy of the model is wrapped in the compiled mode
    and adds ``compiled_fp32`` and ``compiled_genome`` (the same genomes); its compile
    time (``compile_seconds``, first FP32 and first genome forward) is not timed."""
    layers = find_layers(model)
    table = build_quant_table(
        model,
        layers,
        problem.run,
        problem.calibration_batches[:1],
        QuantConfig(alpha=AlphaConfig(enabled=False)),
    )
    batch = problem.fitness_batches[0]
    rng = np.random.default_rng(seed)
    genomes = [
        [int(b) for b in rng.choice(BITS, len(layers))] for _ in range(WARMUP + repeats)
    ]

    def forward(net: torch.nn.Module) -> None:
        with torch.no_grad():
            problem.run(net, batch)

    def variants(quantized: QuantizedModel, prefix: str) -> dict:
        drawn = iter(genomes)

        def fp32() -> None:
            quantized.apply(None)
            forward(quantized.runnable)

        def genome() -> None:
            quantized.apply(next(drawn))
            forward(quantized.runnable)

        return {f"{prefix}fp32": fp32, f"{prefix}genome": genome}

    wrapped = [QuantizedModel(model, table)]
    timed = variants(wrapped[0], "") | {"baseline": lambda: forward(baseline)}
    compile_seconds = None
    if compiled is not None:
        parts = [part.module for part in problem.export_parts]
        wrapped.append(QuantizedModel(compiled, table, compiled=True, parts=parts))
        start = time.perf_counter()
        for genome in (None, genomes[0]):  # FP32 and quantized weights: two graphs
            wrapped[1].apply(genome)
            forward(wrapped[1].runnable)
        compile_seconds = time.perf_counter() - start
        timed |= variants(wrapped[1], "compiled_")
    medians = interleaved_medians(timed, repeats, WARMUP)
    medians["compile_seconds"] = compile_seconds
    for quantized in wrapped:
        quantized.remove()
    return layers, medians
