"""All-INT4 weight-only (W4A16) error: block-wise vs per-channel weight scales.

Every quantizable layer at W4A16 under the tensorrt scheme (symmetric INT4 weights
with FP16 scales, FP16 activations: what ``target: tensorrt`` deploys as
``int4w-fp16``), with the weights quantized per output channel or per block of 128,
64 or 32 input values (``quant.weights``), the block alphas searched per block or one
per layer (``quant.weights.block_alpha``), and with alpha off. Error against FP32
(``f_cos``) on the fitness batches (what the search minimises) and on the held-out
validation batches, plus top-1 where the problem has labels.

Problems: the digits CNN and the digits ViT (shipped weights; the ViT's rows are 64
and 128 values wide, so blocks of 128 or 64 are whole rows there and only 32 splits
them), and a randomly initialised BERT of MiniLM-L6's shape (6 layers, hidden 384,
intermediate 1536; ``transformers.BertConfig``, nothing downloaded) on synthetic
sentences (``heldout.sentences``), whose rows of 384 and 1536 values split into
blocks of 128. Writes ``bench/results/int4_blockwise.json``.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

from hardware import hardware
from heldout import bert_problem
from problem_bench import problem_bench_args, write_results

from evoquant.config import AlphaConfig, QuantConfig, WeightConfig
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.quant.layers import find_layers
from evoquant.quant.table import build_quant_table
from problems.base import Problem
from problems.cnn.digits import digits_problem
from problems.vit.digits_vit import digits_vit_problem

RESULTS = Path(__file__).parent / "results" / "int4_blockwise.json"
W4A16 = (4, 16)
VARIANTS = {
    "per_channel": (WeightConfig(), True),
    "per_channel, no alpha": (WeightConfig(), False),
    "block 128, alpha per layer": (
        WeightConfig(granularity="block", block_alpha="per_layer"),
        True,
    ),
    "block 128, alpha per block": (WeightConfig(granularity="block"), True),
    "block 128, no alpha": (WeightConfig(granularity="block"), False),
    "block 64, alpha per block": (
        WeightConfig(granularity="block", block_size=64),
        True,
    ),
    "block 32, alpha per block": (
        WeightConfig(granularity="block", block_size=32),
        True,
    ),
}
ROLES = {"fitness": "fitness_batches", "validation": "validation_batches"}


PROBLEMS = {
    "digits": digits_problem,
    "digits_vit": digits_vit_problem,
    "bert_minilm_shape_random": partial(
        bert_problem, batch_size=8, hidden_size=384, heads=12, intermediate_size=1536
    ),
}


def variant_row(problem: Problem, weights: WeightConfig, alpha: bool) -> dict:
    """Calibrate one W4A16 table; its all-INT4 errors on fitness and validation."""
    quant = QuantConfig(
        scheme="tensorrt",
        bit_configs=[W4A16],
        alpha=AlphaConfig(enabled=alpha),
        weights=weights,
    )
    model = problem.build_model()
    layers = find_layers(model)
    start = time.perf_counter()
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant, progress=None
    )
    row: dict = {"calibration_seconds": round(time.perf_counter() - start, 1)}
    for role, attribute in ROLES.items():
        fitness = GenomeFitness(
            problem, model, table, layers, "f_cos", getattr(problem, attribute)
        )
        metrics = fitness([W4A16] * len(layers))
        fitness.quantized.remove()
        row[role] = {
            key: float(metrics[key]) for key in ("f_cos", "top1") if key in metrics
        }
    return row


def main() -> None:
    args = problem_bench_args(__doc__, PROBLEMS, RESULTS)
    results: dict = {
        "inputs": {
            "configuration": "every layer W4A16, quant.scheme tensorrt",
            "error": "f_cos against FP32",
            "variants": {
                name: {"weights": weights.model_dump(), "alpha": alpha}
                for name, (weights, alpha) in VARIANTS.items()
            },
        },
        "hardware": hardware(torch_threads=args.threads),
        "problems": {},
    }
    for name in args.problems:
        problem = PROBLEMS[name]()
        rows = {}
        for variant, (weights, alpha) in VARIANTS.items():
            rows[variant] = variant_row(problem, weights, alpha)
            print(name, variant, json.dumps(rows[variant]), flush=True)
        baseline = rows["per_channel"]["validation"]["f_cos"]
        for row in rows.values():
            row["validation_f_cos_over_per_channel"] = (
                round(row["validation"]["f_cos"] / baseline, 4) if baseline else None
            )
        results["problems"][name] = {
            "layers": len(find_layers(problem.build_model())),
            "variants": rows,
        }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
