"""Genome evaluation cost vs the FP32 forward pass of the same batch (target ratio <= 1.10).

For each model: build the QuantTable once (alpha off: it does not change the
evaluation cost), then alternate, in one process, an FP32 forward (``apply(None)``)
and ``apply(random genome) + forward`` (and an unwrapped copy of the model), and
compare medians. Writes ``bench/results/eval_overhead.json`` (``--output`` for
another file, e.g. a run under ``ATEN_CPU_CAPABILITY=avx2``; the capability torch
used is recorded).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
from hardware import hardware
from timing import interleaved_medians

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import build_quant_table
from problems.base import Problem
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "eval_overhead.json"
BITS = (2, 4, 8, 16)
TARGET_RATIO = 1.10
PROBLEMS = {
    "resnet18_b8_224": ("torchvision", {"model": "resnet18", "batch_size": 8}),
    "digits_cnn_b64": ("digits", {}),
    "bevfusion_mini_b4": ("bevfusion_mini", {}),
}
"""Bench name -> (problem, options); each runs one calibration and one fitness batch."""
ONE_BATCH = {"calibration_batches": 1, "fitness_batches": 1}
WARMUP = 3


def measure(problem: Problem, repeats: int, seed: int) -> dict:
    """Interleaved medians of three forwards of one batch, on two clocks.

    ``fp32`` is ``apply(None)`` on the wrapped model (its hooks stay: the target's
    baseline), ``genome`` is ``apply(random genome)`` + forward, ``unwrapped`` a copy
    of the FP32 model without hooks, for what the wrapper itself costs. Wall time is
    the target; process CPU time is kept beside it because this machine is shared:
    under load, waiting for a core inflates wall time but not CPU time.
    """
    model = problem.build_model().eval()
    unwrapped = copy.deepcopy(model)
    layers = find_layers(model)
    quant = QuantConfig(alpha=AlphaConfig(enabled=False))
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches[:1], quant
    )
    quantized = QuantizedModel(model, table)
    batch = problem.fitness_batches[0]
    rng = np.random.default_rng(seed)
    genomes = iter(  # drawn before timing, as many as the rounds
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
        {"fp32": fp32, "genome": genome, "unwrapped": lambda: forward(unwrapped)},
        repeats,
        WARMUP,
    )
    wall, cpu = medians["wall"], medians["cpu"]
    return {
        "layers": len(layers),
        "repeats": repeats,
        "fp32_forward_ms_median": 1e3 * wall["fp32"],
        "apply_plus_forward_ms_median": 1e3 * wall["genome"],
        "unwrapped_fp32_forward_ms_median": 1e3 * wall["unwrapped"],
        "ratio": wall["genome"] / wall["fp32"],
        "ratio_vs_unwrapped": wall["genome"] / wall["unwrapped"],
        "cpu_time_ratio": cpu["genome"] / cpu["fp32"],
        "cpu_time_ratio_vs_unwrapped": cpu["genome"] / cpu["unwrapped"],
        "load_average_after": os.getloadavg(),
        "target_ratio": TARGET_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=PROBLEMS,
        default=list(PROBLEMS),
        help="default: all",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "hardware": hardware(torch_threads=args.threads),
        "models": {},
    }
    for name in args.models:
        kind, options = PROBLEMS[name]
        problem = build_problem(kind, options | ONE_BATCH)
        results["models"][name] = measure(problem, args.repeats, seed=0)
        print(name, json.dumps(results["models"][name]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
