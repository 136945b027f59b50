"""How far ``evaluator.compile`` moves a genome's scores from the eager evaluation's.

For each problem: one quantization table, then the same genomes (FP32, the four
uniform widths, random mixes) scored by an eager and a compiled ``GenomeFitness`` on
the same fitness batches. Writes ``bench/results/compiled_scores.json``: each
genome's error both ways and the relative difference.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from hardware import hardware

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.quant.layers import find_layers
from evoquant.quant.table import build_quant_table
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "compiled_scores.json"
PROBLEMS = {
    "digits": ({"calibration_batches": 1}, "f_cos"),
    "bevfusion_mini": ({"calibration_batches": 1, "fitness_batches": 2}, "f_box"),
}
"""Problem -> (arguments, error objective): the configs' objectives, fewer batches."""
BITS = (2, 4, 8, 16)


def genomes(layers: int, random_mixes: int, seed: int) -> list[list[int] | None]:
    rng = np.random.default_rng(seed)
    mixes = [[int(b) for b in rng.choice(BITS, layers)] for _ in range(random_mixes)]
    return [None, *([bits] * layers for bits in BITS), *mixes]


def compare(name: str, random_mixes: int) -> dict:
    args, error = PROBLEMS[name]
    problem = build_problem(name, args)
    model = problem.build_model().eval()
    layers = find_layers(model)
    quant = QuantConfig(alpha=AlphaConfig(enabled=False))
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    eager = GenomeFitness(problem, copy.deepcopy(model), table, layers, error)
    start = time.perf_counter()
    compiled = GenomeFitness(problem, model, table, layers, error, compiled=True)
    rows = []
    for genome in genomes(len(layers), random_mixes, seed=0):
        a, b = eager(genome)["error"], compiled(genome)["error"]
        rows.append(
            {
                "genome": "fp32" if genome is None else genome,
                "eager": a,
                "compiled": b,
                "relative_difference": abs(a - b) / a if a > 0 else abs(a - b),
            }
        )
    differences = [r["relative_difference"] for r in rows[1:]]
    return {
        "error": error,
        "args": args,
        "compile_and_score_seconds": time.perf_counter() - start,
        "median_relative_difference": float(np.median(differences)),
        "max_relative_difference": max(differences),
        "genomes": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--random-mixes", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"hardware": hardware(torch_threads=args.threads), "problems": {}}
    for name in PROBLEMS:
        results["problems"][name] = compare(name, args.random_mixes)
        summary = {k: v for k, v in results["problems"][name].items() if k != "genomes"}
        print(name, json.dumps(summary))
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
