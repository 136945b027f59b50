"""What discovered attention costs a forward: the model as written vs routed through its layers.

For each transformer: the unmodified FP32 model (fused attention, no mode), the same
weights with their attention products discovered (``evoquant.pipeline.prepare_model``)
under ``QuantizedModel.apply(None)`` (every gene FP32: routing and decomposition
only), and under random genomes (routing plus fake quantization). The three are
interleaved in one process; medians are compared. Also records the largest FP32
difference between the first two (relative to the output scale). Writes
``bench/results/attention_routing.json``.
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
from heldout import bert_problem

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.pipeline import prepare_model
from evoquant.problem import Problem
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import build_quant_table
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "attention_routing.json"
BITS = (2, 4, 8, 16)


def measure(problem: Problem, repeats: int, seed: int) -> dict:
    original = problem.build_model().eval()
    model = prepare_model(problem)
    layers = find_layers(model)
    quant = QuantConfig(alpha=AlphaConfig(enabled=False))
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches[:1], quant
    )
    quantized = QuantizedModel(model, table)
    batch = problem.fitness_batches[0]
    rng = np.random.default_rng(seed)

    def timed(target: torch.nn.Module, genome: list | None) -> float:
        start = time.perf_counter()
        if target is model:
            quantized.apply(genome)
        with torch.no_grad():
            problem.run(target, batch)
        return time.perf_counter() - start

    def random_genome() -> list[int]:
        return [int(b) for b in rng.choice(BITS, len(layers))]

    for _ in range(3):  # warm-up
        timed(original, None), timed(model, None), timed(model, random_genome())
    times: dict[str, list[float]] = {"original": [], "routed_fp32": [], "genome": []}
    for _ in range(repeats):
        times["original"].append(timed(original, None))
        times["routed_fp32"].append(timed(model, None))
        times["genome"].append(timed(model, random_genome()))
    quantized.apply(None)
    with torch.no_grad():
        expected = problem.run(original, batch)
        routed = problem.run(model, batch)
    scale = expected.abs().max().clamp(min=1)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "layers": len(layers),
        "attention_layers": sum(layer.kind == "matmul" for layer in layers),
        "repeats": repeats,
        **{f"{name}_ms_median": 1e3 * value for name, value in medians.items()},
        "routed_fp32_over_original": medians["routed_fp32"] / medians["original"],
        "genome_over_original": medians["genome"] / medians["original"],
        "fp32_max_relative_difference": float((routed - expected).abs().max() / scale),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problems = {
        "digits_vit_b64": build_problem(
            "digits_vit", {"calibration_batches": 1, "fitness_batches": 1}
        ),
        "bert_random_6l_b16_s32": bert_problem(batches=1),
    }
    results = {"hardware": hardware(torch_threads=args.threads), "models": {}}
    for name, problem in problems.items():
        results["models"][name] = measure(problem, args.repeats, seed=0)
        print(name, json.dumps(results["models"][name]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
