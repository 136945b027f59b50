"""Does the exported graph compute what was searched? onnxruntime against the fake-quantized model.

The session is a default one (every graph optimisation on), as a user would open
it: a graph that only loads unoptimised is not a deliverable, and onnxruntime's fused
integer kernels are what it runs. Exact agreement is not expected: the two runtimes
sum in different orders, and wherever that moves an activation across a rounding
boundary, the quantized value differs by one step and the difference travels
downstream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from evoquant.errors import UserError
from evoquant.export.parts import Call, tensors


def session(path: str | Path) -> ort.InferenceSession:
    """A default-optimised CPU session on as many threads as torch uses."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own untyped failures
        first = str(error).strip().partition("\n")[0]
        raise UserError(f"onnxruntime cannot load {path}: {first}") from error


def run_calls(
    sess: ort.InferenceSession, calls: Sequence[Mapping[str, torch.Tensor]]
) -> list[list[np.ndarray]]:
    """The graph's outputs for each call, given as its tensors by graph input name."""
    names = [i.name for i in sess.get_inputs()]
    results = []
    for inputs in calls:
        missing = [name for name in names if name not in inputs]
        if missing:
            raise UserError(
                f"the exported graph takes inputs {names} but the part received "
                f"{sorted(inputs)}"
            )
        feed = {name: inputs[name].cpu().numpy() for name in names}
        results.append(sess.run(None, feed))
    return results


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened arrays (1 for two zero arrays)."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(a @ b / norms)


def compare(
    names: Sequence[str],
    onnx_outputs: Sequence[Sequence[np.ndarray]],
    reference: Sequence[Call],
    fp32: Sequence[Call],
) -> list[dict[str, float | str]]:
    """Per output over all calls: cosine and max |error| against the fake-quantized model,
    and cosine against FP32 (what deployment keeps of the FP32 model)."""
    rows = []
    for j, name in enumerate(names):
        got = np.concatenate([outs[j].ravel() for outs in onnx_outputs])
        ref = np.concatenate(
            [tensors(c.output)[j].float().cpu().numpy().ravel() for c in reference]
        )
        base = np.concatenate(
            [tensors(c.output)[j].float().cpu().numpy().ravel() for c in fp32]
        )
        rows.append(
            {
                "output": name,
                "cosine": cosine(got, ref),
                "max_abs_error": float(np.abs(got - ref).max()),
                "max_abs_reference": float(np.abs(ref).max()),
                "cosine_to_fp32": cosine(got, base),
            }
        )
    return rows
