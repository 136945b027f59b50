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
from pathlib import Path

import torch
from genome_timing import time_genomes
from hardware import hardware
from heldout import bert_problem

from evoquant.pipeline import prepare_model
from evoquant.problem import Problem
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "attention_routing.json"


def measure(problem: Problem, repeats: int, seed: int) -> dict:
    original = problem.build_model().eval()
    model = prepare_model(problem)
    layers, medians = time_genomes(problem, model, original, repeats, seed)
    batch = problem.fitness_batches[0]
    with torch.no_grad():
        expected = problem.run(original, batch)
        routed = problem.run(model, batch)
    scale = expected.abs().max().clamp(min=1)
    wall = medians["wall"]
    return {
        "layers": len(layers),
        "attention_layers": sum(layer.kind == "matmul" for layer in layers),
        "repeats": repeats,
        "original_ms_median": 1e3 * wall["baseline"],
        "routed_fp32_ms_median": 1e3 * wall["fp32"],
        "genome_ms_median": 1e3 * wall["genome"],
        "routed_fp32_over_original": wall["fp32"] / wall["baseline"],
        "genome_over_original": wall["genome"] / wall["baseline"],
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
