"""On a lent GPU: do digits and bevfusion_mini score on CUDA as on the CPU, twice alike, and at what cost?

For each problem: build the model, its QuantTable (stage 1 on that device, alpha off)
and the fitness on the CPU and on ``--device``; score fixed genomes (FP32, uniform 2,
4, 8 and 16 bits, two mixed ones) on both; check that ``f_bits`` is equal, that
``error`` is within ``TOLERANCE`` of the CPU's and that scoring every genome a second
time on the device gives the same metrics bit for bit; then time ``apply(genome) +
forward`` against the FP32 forward there (interleaved medians, synchronised). Also
checks torch's fused fake-quantization kernel on the device against the CPU formula
and that it never waits for the GPU. Writes ``bench/results/gpu_check.json`` and exits
1 when a check fails.

Run it with ``bench/gpu_check.sh`` (it installs the wheels the GPU machine lacks;
docs/gpu.md). ``--device cpu --quick`` runs every step on the CPU, as the tests do.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
from pathlib import Path

CARRIED = ("pydantic", "mmengine")
"""What evoquant needs here that the GPU machine lacks: carried as wheels (docs/gpu.md)."""
RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
TOLERANCE = {
    "f_cos": {"atol": 1e-4, "rtol": 0.02},
    "f_box": {"atol": 0.03, "rtol": 0.05},
}
"""Allowed |device - CPU| = atol + rtol * |CPU| per error metric. CUDA and CPU kernels
round differently in the last bits, and calibrated ranges follow them, so activations
near a half-step may fall on the other side; f_box also counts boxes on either side of
a score threshold. ``f_bits`` depends on the genome alone and must be equal."""
PROBLEMS = {
    "digits": ("f_cos", {"calibration_batches": 1, "fitness_batches": 2}),
    "bevfusion_mini": (
        "f_box",
        {"calibration_batches": 1, "fitness_batches": 2, "validation_batches": 0},
    ),
}
"""Problem -> (its error objective, options sized to finish in minutes)."""
QUICK = {
    "digits": {"fitness_batches": 1},
    "bevfusion_mini": {"fitness_batches": 1, "batch_size": 1},
}
"""``--quick``: the smallest runs that still take every step."""
FUSED_SAMPLES = 1_000_000


def require_carried() -> None:
    """One line and exit status 2 when a carried package is missing."""
    missing = [name for name in CARRIED if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"gpu_check: {', '.join(missing)} missing: fetch the wheels into "
            "bench/gpu_wheels and run bench/gpu_check.sh (docs/gpu.md)",
            file=sys.stderr,
        )
        sys.exit(2)


def to_device(batch, device):
    """Tensors in nested tuples, lists and dicts moved to ``device``; anything else kept
    (mmengine models move their data samples themselves)."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def genomes(layers: int, quick: bool) -> dict[str, list[int] | None]:
    import numpy as np

    uniform = {f"uniform{bits}": [bits] * layers for bits in (2, 4, 8, 16)}
    rng = np.random.default_rng(0)
    mixed = {
        f"mixed{i}": [int(b) for b in rng.choice((2, 4, 8, 16), layers)]
        for i in range(2)
    }
    chosen = {"fp32": None} | uniform | mixed
    return {k: chosen[k] for k in ("uniform8", "mixed0")} if quick else chosen


def scorer(problem, device, error: str):
    """The problem's model, table and fitness built on ``device``."""

    from evoquant.config import AlphaConfig, QuantConfig
    from evoquant.evaluate.fitness import GenomeFitness
    from evoquant.quant.layers import find_layers
    from evoquant.quant.table import build_quant_table

    model = problem.build_model().eval().to(device)
    layers = find_layers(model)
    calibration = [to_device(b, device) for b in problem.calibration_batches]
    fitness_batches = [to_device(b, device) for b in problem.fitness_batches]
    quant = QuantConfig(alpha=AlphaConfig(enabled=False))
    table = build_quant_table(model, layers, problem.run, calibration, quant)
    return GenomeFitness(problem, model, table, layers, error, fitness_batches)


def objectives(metrics: dict) -> dict[str, float]:
    return {"f_bits": metrics["f_bits"], "error": metrics["error"]}


def within(device_value: float, cpu_value: float, tolerance: dict) -> bool:
    return abs(device_value - cpu_value) <= tolerance["atol"] + tolerance["rtol"] * abs(
        cpu_value
    )


def check_problem(name: str, device, quick: bool, repeats: int) -> dict:
    import torch
    from timing import interleaved_medians

    from problems.registry import build_problem

    error, options = PROBLEMS[name]
    if quick:
        options = options | QUICK[name]
    problem = build_problem(name, options)
    on_cpu = scorer(problem, torch.device("cpu"), error)
    on_device = scorer(problem, device, error)
    chosen = genomes(len(on_cpu.layers), quick)
    first = {label: on_device(genome) for label, genome in chosen.items()}
    second = {label: on_device(genome) for label, genome in chosen.items()}
    rows = {}
    for label, genome in chosen.items():
        cpu, dev = objectives(on_cpu(genome)), objectives(first[label])
        rows[label] = {
            "cpu": cpu,
            "device": dev,
            "f_bits_equal": cpu["f_bits"] == dev["f_bits"],
            "error_within_tolerance": within(
                dev["error"], cpu["error"], TOLERANCE[error]
            ),
            "repeat_bitwise_equal": first[label] == second[label],
        }

    batch = on_device.batches[0]
    model = on_device.quantized.model
    timed_genomes = itertools.cycle([g for g in chosen.values() if g is not None])

    def forward(genome) -> None:
        on_device.quantized.apply(genome)
        with torch.no_grad():
            problem.run(model, batch)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    medians = interleaved_medians(
        {
            "fp32": lambda: forward(None),
            "genome": lambda: forward(next(timed_genomes)),
        },
        repeats,
        sync=sync,
    )["wall"]
    passed = all(
        row["f_bits_equal"]
        and row["error_within_tolerance"]
        and row["repeat_bitwise_equal"]
        for row in rows.values()
    )
    return {
        "error_metric": error,
        "options": options,
        "layers": len(on_cpu.layers),
        "genomes": rows,
        "timing": {
            "repeats": repeats,
            "fp32_forward_ms_median": 1e3 * medians["fp32"],
            "apply_plus_forward_ms_median": 1e3 * medians["genome"],
            "ratio": medians["genome"] / medians["fp32"],
        },
        "passed": passed,
    }


def check_fused_kernel(device) -> dict:
    """The device's per-tensor path against the CPU formula, and no wait for the GPU."""
    import torch

    from evoquant.quant.fakequant import QParams, compute_qparams, fake_quantize

    generator = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(FUSED_SAMPLES, generator=generator) + 0.5
    report = {"samples": FUSED_SAMPLES}
    for bits in (8, 16):
        cpu_qp = compute_qparams(x.min(), x.max(), bits, "thesis", None)
        qp = QParams(
            cpu_qp.scale.to(device),
            cpu_qp.zero_point.to(device),
            cpu_qp.qmin,
            cpu_qp.qmax,
            None,
        )
        on_device = x.to(device)
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("error")  # raises if the call would sync
        try:
            out = fake_quantize(on_device, qp)
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
        expected = fake_quantize(x, cpu_qp)
        differ = out.cpu() != expected
        steps = (out.cpu() - expected).abs()[differ] / cpu_qp.scale
        report[f"{bits}_bits"] = {
            "fused": qp.fused_zero_point is not None,
            "mismatch_rate": differ.float().mean().item(),
            "max_mismatch_steps": steps.max().item() if differ.any() else 0.0,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="two genomes, one batch")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    require_carried()

    import torch
    from hardware import hardware

    from evoquant.evaluate.attempt import deterministic_cuda

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device here", file=sys.stderr)
        sys.exit(2)
    deterministic_cuda()  # as every evaluation worker does, before any CUDA work
    # the CPU has no TF32: compare the quantization, not a coarser convolution
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    results = {
        "hardware": hardware(
            device=str(device), gpu=gpu, cuda=torch.version.cuda, quick=args.quick
        ),
        "tf32": False,
        "tolerance": TOLERANCE,
        "fused_kernel": check_fused_kernel(device),
        "problems": {},
    }
    for name in PROBLEMS:
        results["problems"][name] = check_problem(
            name, device, args.quick, 3 if args.quick else args.repeats
        )
        print(name, json.dumps(results["problems"][name]["timing"]), flush=True)
    results["passed"] = all(p["passed"] for p in results["problems"].values())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.output}: {'passed' if results['passed'] else 'FAILED'}")
    sys.exit(0 if results["passed"] else 1)


if __name__ == "__main__":
    main()
