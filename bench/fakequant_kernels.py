"""torch's fused fake-quantization kernel vs the formula evoquant runs on the CPU.

Two questions decide which path `evoquant.quant.fakequant` takes: how often the fused
kernel (``x * (1 / S)``, the arithmetic of its CPU and CUDA builds alike) rounds
differently from the formula's ``x / S``, and which is faster here. Writes
``bench/results/fakequant_kernels.json``.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch
from hardware import hardware
from timing import interleaved_medians

from evoquant.quant.fakequant import compute_qparams, fake_quantize

RESULTS = Path(__file__).parent / "results" / "fakequant_kernels.json"
SHAPES = {"digits_conv_input": (64, 32, 8, 8), "bev_feature_map": (4, 64, 64, 64)}
"""Activation sizes of the bench models: a digits block input, a mini BEVFusion map."""


def fused(x: torch.Tensor, qp) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(
        x, qp.scale, qp.zero_point.to(torch.int32), qp.qmin, qp.qmax
    )


def mismatches(trials: int, size: int) -> dict:
    """Share of elements, per scheme and width, where the two paths disagree."""
    generator = torch.Generator().manual_seed(0)
    report = {}
    for scheme in ("thesis", "tensorrt"):
        for bits in (2, 4, 8) + ((16,) if scheme == "thesis" else ()):
            differ = total = 0
            worst = 0.0
            for _ in range(trials):
                spread = float(torch.rand(1, generator=generator)) * 10 + 0.01
                x = spread * torch.randn(size, generator=generator)
                x += float(torch.randn(1, generator=generator))
                qp = compute_qparams(x.min(), x.max(), bits, scheme, None)
                out, expected = fused(x, qp), fake_quantize(x, qp)
                mask = out != expected
                differ += int(mask.sum())
                total += x.numel()
                if mask.any():
                    steps = (out - expected).abs()[mask] / qp.scale
                    worst = max(worst, steps.max().item())
            report[f"{scheme}_{bits}"] = {
                "elements": total,
                "mismatch_rate": differ / total,
                "max_mismatch_steps": worst,
            }
    return report


def timings(repeats: int) -> dict:
    report = {}
    for name, shape in SHAPES.items():
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        qp = compute_qparams(x.min(), x.max(), 8, "thesis", None)
        medians = interleaved_medians(
            {"formula": partial(fake_quantize, x, qp), "fused": partial(fused, x, qp)},
            repeats,
        )["wall"]
        report[name] = {
            "shape": list(shape),
            "formula_us_median": 1e6 * medians["formula"],
            "fused_us_median": 1e6 * medians["fused"],
            "fused_over_formula": medians["fused"] / medians["formula"],
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--size", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "hardware": hardware(torch_threads=args.threads),
        "mismatches": mismatches(args.trials, args.size),
        "cpu_timings": timings(args.repeats),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
