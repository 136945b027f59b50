"""Genome evaluation cost vs the FP32 forward pass of the same batch (target ratio <= 1.25).

For each model: build the QuantTable once (alpha off: it does not change the
evaluation cost), then alternate, in one process, an FP32 forward (``apply(None)``)
and ``apply(random genome) + forward``, and compare medians. Writes
``bench/results/eval_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from hardware import hardware

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import build_quant_table
from problems.base import Problem
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "eval_overhead.json"
BITS = (2, 4, 8, 16)


def measure(problem: Problem, repeats: int, seed: int) -> dict:
    model = problem.build_model().eval()
    layers = find_layers(model)
    quant = QuantConfig(alpha=AlphaConfig(enabled=False))
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches[:1], quant
    )
    quantized = QuantizedModel(model, table)
    batch = problem.fitness_batches[0]
    rng = np.random.default_rng(seed)

    def timed(genome) -> float:
        start = time.perf_counter()
        quantized.apply(genome)
        with torch.no_grad():
            problem.run(model, batch)
        return time.perf_counter() - start

    for _ in range(3):  # warm-up
        timed(None)
        timed([int(b) for b in rng.choice(BITS, len(layers))])
    fp32, genome = [], []
    for _ in range(repeats):
        fp32.append(timed(None))
        genome.append(timed([int(b) for b in rng.choice(BITS, len(layers))]))
    return {
        "layers": len(layers),
        "repeats": repeats,
        "fp32_forward_ms_median": 1e3 * statistics.median(fp32),
        "apply_plus_forward_ms_median": 1e3 * statistics.median(genome),
        "ratio": statistics.median(genome) / statistics.median(fp32),
        "target_ratio": 1.25,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problems = {
        "resnet18_b8_224": build_problem(
            "torchvision",
            {
                "model": "resnet18",
                "batch_size": 8,
                "calibration_batches": 1,
                "fitness_batches": 1,
            },
        ),
        "digits_cnn_b64": build_problem(
            "digits", {"calibration_batches": 1, "fitness_batches": 1}
        ),
        "bevfusion_mini_b4": build_problem(
            "bevfusion_mini", {"calibration_batches": 1, "fitness_batches": 1}
        ),
    }
    results = {
        "hardware": hardware(torch_threads=args.threads),
        "models": {},
    }
    for name, problem in problems.items():
        results["models"][name] = measure(problem, args.repeats, seed=0)
        print(name, json.dumps(results["models"][name]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
