"""Genome evaluation cost vs the FP32 forward pass of the same batch (target ratio <= 1.10).

For each model: build the QuantTable once (alpha off: it does not change the
evaluation cost), then alternate, in one process, an FP32 forward (``apply(None)``)
and ``apply(random genome) + forward`` (and an unwrapped copy of the model), and
compare medians. Where the problem can be compiled (``evaluator.compile``), a third
copy runs both in the compiled mode, interleaved with the others. Writes ``bench/results/eval_overhead.json`` (``--output`` for
another file, e.g. a run under ``ATEN_CPU_CAPABILITY=avx2``; the capability torch
used is recorded).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

import torch
from genome_timing import time_genomes
from hardware import hardware

from problems.base import Problem
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "eval_overhead.json"
TARGET_RATIO = 1.10
PROBLEMS = {
    "resnet18_b8_224": ("torchvision", {"model": "resnet18", "batch_size": 8}),
    "digits_cnn_b64": ("digits", {}),
    "bevfusion_mini_b4": ("bevfusion_mini", {}),
}
"""Bench name -> (problem, options); each runs one calibration and one fitness batch."""
ONE_BATCH = {"calibration_batches": 1, "fitness_batches": 1}


def measure(problem: Problem, repeats: int, seed: int) -> dict:
    """Interleaved medians of three forwards of one batch, on two clocks.

    ``fp32`` is ``apply(None)`` on the wrapped model (its hooks stay: the target's
    baseline), ``genome`` is ``apply(random genome)`` + forward, ``unwrapped`` a copy
    of the FP32 model without hooks, for what the wrapper itself costs. Wall time is
    the target; process CPU time is kept beside it because this machine is shared:
    under load, waiting for a core inflates wall time but not CPU time.
    """
    model = problem.build_model().eval()
    compiled = copy.deepcopy(model) if problem.compilable else None
    layers, medians = time_genomes(
        problem, model, copy.deepcopy(model), repeats, seed, compiled
    )
    wall, cpu = medians["wall"], medians["cpu"]
    return compiled_ratios(medians) | {
        "layers": len(layers),
        "repeats": repeats,
        "fp32_forward_ms_median": 1e3 * wall["fp32"],
        "apply_plus_forward_ms_median": 1e3 * wall["genome"],
        "unwrapped_fp32_forward_ms_median": 1e3 * wall["baseline"],
        "ratio": wall["genome"] / wall["fp32"],
        "ratio_vs_unwrapped": wall["genome"] / wall["baseline"],
        "cpu_time_ratio": cpu["genome"] / cpu["fp32"],
        "cpu_time_ratio_vs_unwrapped": cpu["genome"] / cpu["baseline"],
        "load_average_after": os.getloadavg(),
        "target_ratio": TARGET_RATIO,
    }


def compiled_ratios(medians: dict) -> dict:
    """The compiled mode against the eager FP32 forward and its own compiled FP32 one."""
    if medians["compile_seconds"] is None:
        return {"compiled": "not compilable (Problem.compilable is False)"}
    wall = medians["wall"]
    saved = wall["genome"] - wall["compiled_genome"]
    return {
        "compile_seconds": medians["compile_seconds"],
        # forwards of this batch after which the compile has paid for itself
        "break_even_forwards": medians["compile_seconds"] / saved
        if saved > 0
        else None,
        "compiled_fp32_forward_ms_median": 1e3 * wall["compiled_fp32"],
        "compiled_apply_plus_forward_ms_median": 1e3 * wall["compiled_genome"],
        "compiled_ratio": wall["compiled_genome"] / wall["fp32"],
        "compiled_ratio_vs_compiled_fp32": wall["compiled_genome"]
        / wall["compiled_fp32"],
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
