"""Uniform quantization of the mini BEVFusion, with and without alpha (the thesis's Q/A).

For FP32 and uniform W16A16 / W8A8 / W4A8 / W2A8 it reports F_box (against FP32) and
mAP / NDS (against ground truth) on the fitness scenes, plus FP32 mAP on the 64 held-out
test scenes, and the time of one genome evaluation against the FP32 forward of the same
fitness batches. Writes ``bench/results/bevfusion_mini_uniform.json``.
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
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.quant.layers import find_layers
from evoquant.quant.table import build_quant_table
from problems.bevfusion.detection import DetectionMetric, run_detector
from problems.bevfusion.mini.geometry import CLASSES
from problems.bevfusion.mini.problem import BARRIER, scene_batches
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "bevfusion_mini_uniform.json"
CONFIGS = {"W16A16": (16, 16), "W8A8": (8, 8), "W4A8": (4, 8), "W2A8": (2, 8)}
KEYS = ("relative_cost", "f_box", "e_center", "e_yaw_size", "mAP", "NDS")


def uniform_rows(problem, alpha: bool) -> tuple[dict, GenomeFitness]:
    model = problem.build_model()
    layers = find_layers(model)
    quant = QuantConfig(alpha=AlphaConfig(enabled=alpha))
    start = time.perf_counter()
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    calibration_s = time.perf_counter() - start
    fitness = GenomeFitness(problem, model, table, layers, "f_box")
    rows = {"FP32": fitness(None)}
    for name, config in CONFIGS.items():
        rows[name] = fitness([config] * len(layers))
    rows = {name: {k: round(float(m[k]), 4) for k in KEYS} for name, m in rows.items()}
    return {"calibration_seconds": round(calibration_s, 1), "rows": rows}, fitness


def evaluation_timing(fitness: GenomeFitness, repeats: int, seed: int) -> dict:
    """Median seconds of an FP32 forward over the fitness batches vs a full evaluation."""
    rng = np.random.default_rng(seed)
    n = len(fitness.layers)

    def forward_only() -> float:
        start = time.perf_counter()
        fitness.outputs(None)
        return time.perf_counter() - start

    def evaluation() -> float:
        genome = [int(b) for b in rng.choice([2, 4, 8, 16], n)]
        start = time.perf_counter()
        fitness(genome)
        return time.perf_counter() - start

    forward_only(), evaluation()  # warm-up
    fp32, genome = [], []
    for _ in range(repeats):
        fp32.append(forward_only())
        genome.append(evaluation())
    fp32_s, genome_s = statistics.median(fp32), statistics.median(genome)
    return {
        "repeats": repeats,
        "fp32_forward_s_median": round(fp32_s, 4),
        "genome_evaluation_s_median": round(genome_s, 4),
        "ratio": round(genome_s / fp32_s, 3),
        "target_ratio": 1.25,
    }


def held_out_map(problem, scenes: int, seed: int) -> dict:
    model = problem.build_model()
    test = scene_batches("test", 4, scenes // 4, seed)
    outputs = [run_detector(model, batch) for batch in test]
    return {"scenes": scenes} | DetectionMetric(len(CLASSES), [BARRIER], [BARRIER])(
        outputs, test
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--test-scenes", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem_args = {"batch_size": 4, "calibration_batches": 2, "fitness_batches": 4}
    problem = build_problem("bevfusion_mini", problem_args)
    results = {
        "inputs": {"problem": "bevfusion_mini", "args": problem_args, "error": "f_box"},
        "hardware": hardware(torch_threads=args.threads),
        "fp32_held_out": held_out_map(problem, args.test_scenes, seed=0),
    }
    print("FP32 on held-out test scenes:", results["fp32_held_out"])
    for label, alpha in (("minmax", False), ("alpha", True)):
        results[label], fitness = uniform_rows(problem, alpha)
        print(f"{label} (calibration {results[label]['calibration_seconds']} s)")
        for name, row in results[label]["rows"].items():
            print(f"  {name:7s}", "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
    results["evaluation_timing"] = evaluation_timing(fitness, args.repeats, seed=0)
    print("timing:", results["evaluation_timing"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
