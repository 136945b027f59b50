"""Uniform quantization of the digits CNN, with and without alpha (the thesis's Q/A).

On the shipped weights (``problems/cnn/weights/digits_cnn.safetensors``) and the shipped
config's quantization settings (``problems/configs/digits.yaml``: thesis scheme, alpha
grid 0.80..1.20 step 0.02), it reports f_cos (against FP32) and held-out top-1 of FP32
and of uniform W16A16 / W8A8 / W4A8 / W2A8, once with min/max ranges (alpha off) and
once with alpha, and whether alpha lowers the error of each. This is a measurement of
one trained network, not a guarantee, so it lives here and not in the tests. Writes
``bench/results/digits_alpha.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

import torch
import yaml
from hardware import hardware
from uniform import UNIFORM_CONFIGS, uniform_rows

from evoquant.config import parse_config
from problems.cnn.digits import WEIGHTS, digits_problem
from problems.registry import build_problem
from problems.weights import log_path

RESULTS = Path(__file__).parent / "results" / "digits_alpha.json"
CONFIG = Path(__file__).parents[1] / "problems" / "configs" / "digits.yaml"
KEYS = ("relative_cost", "f_cos", "top1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", help="another weights file (default: the shipped)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = parse_config(yaml.safe_load(CONFIG.read_text()), str(CONFIG))
    defaults = {  # the factory's defaults, so the JSON shows every input
        name: p.default
        for name, p in inspect.signature(digits_problem).parameters.items()
        if name != "weights"
    }
    problem_args = defaults | dict(config.problem.args)
    if args.weights:
        problem_args["weights"] = args.weights
    weights = Path(args.weights) if args.weights else WEIGHTS
    problem = build_problem("digits", problem_args)
    quant = config.quant
    training = {}
    if log_path(weights).is_file():
        record = json.loads(log_path(weights).read_text())
        training = {k: v for k, v in record.items() if k != "log"}
    results = {
        "inputs": {
            "problem": "digits",
            "args": problem_args,
            "weights": weights.name,
            "weights_training": training,
            "quant": quant.model_dump(mode="json"),
            "error": "f_cos",
        },
        "hardware": hardware(
            torch_threads=args.threads,
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
        ),
    }
    print("inputs:", json.dumps(results["inputs"]))
    print("hardware:", json.dumps(results["hardware"]))
    for label, alpha in (("minmax", False), ("alpha", True)):
        settings = quant.model_copy(
            update={"alpha": quant.alpha.model_copy(update={"enabled": alpha})}
        )
        results[label] = uniform_rows(problem, settings, "f_cos", KEYS)
        print(f"{label} (calibration {results[label]['calibration_seconds']} s)")
        for name, row in results[label]["rows"].items():
            print(f"  {name:7s}", "  ".join(f"{k} {v:.6g}" for k, v in row.items()))
    minmax, alpha = results["minmax"]["rows"], results["alpha"]["rows"]
    results["alpha_lowers_f_cos"] = {
        name: alpha[name]["f_cos"] < minmax[name]["f_cos"] for name in UNIFORM_CONFIGS
    }
    results["f_cos_ratio_alpha_to_minmax"] = {
        name: round(alpha[name]["f_cos"] / minmax[name]["f_cos"], 4)
        for name in UNIFORM_CONFIGS
        if minmax[name]["f_cos"] > 0
    }
    print("alpha lowers f_cos:", json.dumps(results["alpha_lowers_f_cos"]))
    print("f_cos alpha / min-max:", json.dumps(results["f_cos_ratio_alpha_to_minmax"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
