"""QuantTable bytes per weight: integer codes (format 2) vs float copies (format 1).

For each model and scheme, one table is built (alpha off: it changes no size) and
saved; ``after`` is the size of the saved tensor file. ``before`` is the same table
laid out as format 1 did, every weight of every bit config as an FP32 copy next to
the same quantizer tensors, serialised the same way (safetensors). Both are divided
by the weights of the quantized layers, so ``bytes_per_weight`` is what the table
costs for each weight of the model (over all its bit configs). Also timed: building
the QuantizedModel, which decodes every config's weights (once per worker). The thesis scheme has
W2A8, W4A8, W8A8 and W16A16 (INT16 codes); the tensorrt scheme W4A16 (block-wise,
blocks of 128), W8A8 and W16A16 (FP16). Writes ``bench/results/table_size.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from hardware import hardware
from safetensors.torch import save

from evoquant.config import AlphaConfig, QuantConfig, WeightConfig
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import TENSORS_FILE, QuantTable, build_quant_table
from problems.registry import build_problem

RESULTS = Path(__file__).parent / "results" / "table_size.json"
PROBLEMS = {
    "digits": ("digits", {"calibration_batches": 1, "fitness_batches": 1}),
    "digits_vit": ("digits_vit", {"calibration_batches": 1, "fitness_batches": 1}),
    "bevfusion_mini": (
        "bevfusion_mini",
        {"calibration_batches": 1, "fitness_batches": 1},
    ),
    "resnet18": (
        "torchvision",
        {
            "model": "resnet18",
            "image_size": 64,
            "batch_size": 2,
            "calibration_batches": 1,
            "fitness_batches": 1,
            "validation_batches": 1,
        },
    ),
}
SCHEMES = {
    "thesis": QuantConfig(alpha=AlphaConfig(enabled=False)),
    "tensorrt": QuantConfig(
        scheme="tensorrt",
        bit_configs=[(4, 16), (8, 8), (16, 16)],
        alpha=AlphaConfig(enabled=False),
        weights=WeightConfig(granularity="block"),
    ),
}


def format1_bytes(table: QuantTable) -> int:
    """The tensor file format 1 wrote for ``table``: FP32 weights plus the quantizers."""
    tensors = {}
    for (layer, w, a), entry in table.entries.items():
        prefix = f"{layer}/W{w}A{a}"
        if entry.codes is not None:
            tensors[f"{prefix}/weight"] = entry.weight.contiguous()
        quantizers = [("weight", entry.weight_qparams)] + [
            (f"input{i}", qp) for i, qp in enumerate(entry.input_qparams)
        ]
        for role, qp in quantizers:
            if qp is not None:
                tensors[f"{prefix}/{role}_scale"] = qp.scale.contiguous()
                tensors[f"{prefix}/{role}_zero_point"] = qp.zero_point.contiguous()
    return len(save(tensors))


def measure(problem_name: str, args: dict, quant: QuantConfig) -> dict:
    problem = build_problem(problem_name, args)
    model = problem.build_model().eval()
    layers = find_layers(model)
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    weights = sum(layer.num_weights for layer in layers)
    with tempfile.TemporaryDirectory() as directory:
        table.save(directory)
        after = (Path(directory) / TENSORS_FILE).stat().st_size
    before = format1_bytes(table)
    start = time.perf_counter()  # what a worker pays once: decoding every config
    QuantizedModel(model, table).remove()
    decode_seconds = time.perf_counter() - start
    return {
        "layers": len(layers),
        "weights": weights,
        "bit_configs": [f"W{w}A{a}" for w, a in quant.bit_configs],
        "before_bytes": before,
        "after_bytes": after,
        "before_bytes_per_weight": round(before / weights, 3),
        "after_bytes_per_weight": round(after / weights, 3),
        "after_over_before": round(after / before, 4),
        "quantized_model_build_seconds": round(decode_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict = {"hardware": hardware(torch_threads=1), "models": {}}
    for name in args.problems:
        problem_name, problem_args = PROBLEMS[name]
        results["models"][name] = {
            scheme: measure(problem_name, problem_args, quant)
            for scheme, quant in SCHEMES.items()
        }
        print(name, json.dumps(results["models"][name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
