"""FP32 and the uniform configurations scored on a problem's fitness batches.

Shared by the benches that compare calibration settings on uniform genomes, so each
of them builds its table and scores its genomes the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from evoquant.config import QuantConfig
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.quant.layers import find_layers
from evoquant.quant.table import build_quant_table

UNIFORM_CONFIGS = {"W16A16": (16, 16), "W8A8": (8, 8), "W4A8": (4, 8), "W2A8": (2, 8)}

Extra = Callable[[GenomeFitness, list | None], dict]
"""More columns for a row, from the fitness with the genome applied."""


def uniform_rows(
    problem,
    quant: QuantConfig,
    error: str,
    keys: Sequence[str],
    extra: Extra | None = None,
) -> dict:
    """``keys`` of the metrics of FP32 and of each uniform configuration, and the
    calibration time; ``extra`` adds columns measured elsewhere (held-out data)."""
    model = problem.build_model()
    layers = find_layers(model)
    start = time.perf_counter()
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    calibration_s = time.perf_counter() - start
    fitness = GenomeFitness(problem, model, table, layers, error)
    genomes = {"FP32": None} | {
        name: [config] * len(layers) for name, config in UNIFORM_CONFIGS.items()
    }
    rows = {}
    for name, genome in genomes.items():
        metrics = fitness(genome)
        rows[name] = {k: float(metrics[k]) for k in keys}
        if extra is not None:
            rows[name] |= extra(fitness, genome)
    return {"calibration_seconds": round(calibration_s, 1), "rows": rows}
