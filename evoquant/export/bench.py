"""Latency of a TensorRT engine: warm-up, then mean / p50 / p99 over timed runs.

Dynamic inputs run at their optimisation profile's tuned shape. Inputs and
outputs live in pinned host buffers and are copied on the same CUDA
stream as the inference, so each timed run (CUDA events around copy in, execute,
copy out) is what an application waiting for a result sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from evoquant.errors import UserError
from evoquant.export.engine import require_tensorrt


def latency_stats(times_ms: Sequence[float]) -> dict[str, float]:
    """Mean, median, 99th percentile and extremes of per-run latencies in milliseconds."""
    if not times_ms:
        raise ValueError("no timed run")
    times = np.asarray(times_ms, dtype=float)
    return {
        "mean_ms": float(times.mean()),
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "min_ms": float(times.min()),
        "max_ms": float(times.max()),
    }


def bench_engine(path: str | Path, runs: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Time ``runs`` inferences of the engine at ``path`` on random inputs after ``warmup`` untimed ones."""
    if runs < 1 or warmup < 0:
        raise UserError("bench-engine needs --runs >= 1 and --warmup >= 0")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"engine file not found: {path}")
    trt, cuda = require_tensorrt()
    context = cuda.Device(0).make_context()
    try:
        times = _timed_runs(trt, cuda, path, runs, warmup)
    finally:
        context.pop()
    return {
        "engine": str(path),
        "device": cuda.Device(0).name(),
        "tensorrt": trt.__version__,
        "warmup": warmup,
        "runs": runs,
        **latency_stats(times),
    }


def _timed_runs(
    trt: ModuleType, cuda: ModuleType, path: Path, runs: int, warmup: int
) -> list[float]:
    """Milliseconds per run; every engine and buffer is freed on return, inside the context."""
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
        path.read_bytes()
    )
    if engine is None:
        raise UserError(f"{path} is not an engine TensorRT {trt.__version__} can load")
    execution = engine.create_execution_context()
    stream = cuda.Stream()
    rng = np.random.default_rng(0)
    inputs, outputs = [], []
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    for name in names:  # dynamic inputs at the profile's tuned shape (the largest seen)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT and any(
            d < 0 for d in engine.get_tensor_shape(name)
        ):
            execution.set_input_shape(name, engine.get_tensor_profile_shape(name, 0)[1])
    for name in names:
        shape = tuple(execution.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise UserError(f"{path}: tensor {name} has a dynamic shape {shape}")
        host = cuda.pagelocked_empty(shape, trt.nptype(engine.get_tensor_dtype(name)))
        device = cuda.mem_alloc(max(host.nbytes, 1))
        execution.set_tensor_address(name, int(device))
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            host[...] = rng.standard_normal(shape).astype(host.dtype)
            inputs.append((host, device))
        else:
            outputs.append((host, device))

    def infer() -> None:
        for host, device in inputs:
            cuda.memcpy_htod_async(device, host, stream)
        execution.execute_async_v3(stream.handle)
        for host, device in outputs:
            cuda.memcpy_dtoh_async(host, device, stream)

    for _ in range(warmup):
        infer()
    stream.synchronize()
    start, end = cuda.Event(), cuda.Event()
    times = []
    for _ in range(runs):
        start.record(stream)
        infer()
        end.record(stream)
        end.synchronize()
        times.append(start.time_till(end))
    return times
