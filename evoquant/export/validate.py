"""Does the exported graph compute what was searched? onnxruntime against the fake-quantized model.

Graph optimizations are off, so onnxruntime executes the Q/DQ and cast nodes as
written rather than its own fused integer kernels. Exact agreement is not expected:
the two runtimes sum convolutions in different orders, and wherever that moves an
activation across a rounding boundary, the quantized value differs by one step and
the difference travels downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from evoquant.errors import UserError
from evoquant.export.parts import Call, tensors


def session(path: str | Path) -> ort.InferenceSession:
    """A CPU session on as many threads as torch uses, executing the graph unfused."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_calls(
    sess: ort.InferenceSession, calls: Sequence[Call]
) -> list[list[np.ndarray]]:
    """The graph's outputs for each captured call, fed the call's input tensors in order."""
    names = [i.name for i in sess.get_inputs()]
    results = []
    for call in calls:
        inputs = [t.cpu().numpy() for t in tensors((call.args, call.kwargs))]
        if len(inputs) != len(names):
            raise UserError(
                f"the exported graph takes {len(names)} inputs but the part received "
                f"{len(inputs)} tensors"
            )
        results.append(sess.run(None, dict(zip(names, inputs))))
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
