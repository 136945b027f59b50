"""TensorRT engines from the exported graphs, and the precision each layer really got.

The network is strongly typed: TensorRT takes every precision from the graph (Q/DQ
nodes, casts) instead of choosing its own, so the engine should run what the genome
says. It may still fall back (e.g. run a layer unfused in FP32), so the engine
inspector's layer information is read back and compared with the graph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from evoquant.atomic import write_bytes_atomic
from evoquant.errors import UserError

DTYPES = (
    ("BFloat16", "bf16"),
    ("BF16", "bf16"),
    ("FP8", "fp8"),
    ("Int8", "int8"),
    ("INT8", "int8"),
    ("Int4", "int4"),
    ("INT4", "int4"),
    ("FP16", "fp16"),
    ("Half", "fp16"),
    ("FP32", "fp32"),
    ("Float", "fp32"),
)
"""Data type words of the inspector's ``Format/Datatype`` strings; BFloat16 before Float."""

NOT_FOUND = "not found (fused beyond recognition)"


def require_tensorrt() -> tuple[ModuleType, ModuleType]:
    """``tensorrt`` and ``pycuda.driver`` with a GPU present, else a one-line UserError."""
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as error:
        raise UserError(
            "TensorRT engines need an NVIDIA GPU with the tensorrt extra "
            f"(pip install 'evoquant[tensorrt]'): {error}"
        ) from None
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            raise cuda.Error("no CUDA device")
    except cuda.Error as error:
        raise UserError(f"TensorRT engines need an NVIDIA GPU: {error}") from None
    return trt, cuda


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    ranges: Mapping[str, tuple[Sequence[int], Sequence[int]]] | None = None,
) -> dict[str, Any]:
    """Build a strongly typed engine from ``onnx_path``; returns the inspector's engine information.

    An input with dynamic axes gets an optimisation profile from ``ranges`` (its
    smallest and largest shapes, the largest also the shape tuned for).
    """
    trt, _ = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(
        1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    )
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(
            str(parser.get_error(i)).replace("\n", " ")
            for i in range(parser.num_errors)
        )
        raise UserError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    dynamic = [
        network.get_input(i)
        for i in range(network.num_inputs)
        if any(d < 0 for d in network.get_input(i).shape)
    ]
    if dynamic:
        profile = builder.create_optimization_profile()
        for tensor in dynamic:
            if tensor.name not in (ranges or {}):
                raise UserError(
                    f"{onnx_path.name}: input {tensor.name} has dynamic axes and no "
                    "shape range for an optimisation profile"
                )
            low, high = ranges[tensor.name]
            profile.set_shape(tensor.name, tuple(low), tuple(high), tuple(high))
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserError(f"TensorRT could not build an engine from {onnx_path.name}")
    write_bytes_atomic(engine_path, bytes(plan))
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    inspector = engine.create_engine_inspector()
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def _dtype(text: str) -> str | None:
    return next((label for word, label in DTYPES if word in text), None)


def engine_precision(info: Mapping[str, Any], node_names: Sequence[str]) -> str:
    """How the engine runs the graph nodes ``node_names``, in the export's precision labels.

    The engine layer holding a node is the one whose name or metadata names it; its
    first input's data type is the compute precision, and INT4 weights are read
    from its weight description.
    """
    for layer in info.get("Layers", []):
        if not isinstance(layer, Mapping):
            continue
        text = f"{layer.get('Name', '')} {layer.get('Metadata', '')}"
        if not any(name in text for name in node_names):
            continue
        inputs = layer.get("Inputs") or [{}]
        compute = _dtype(str(inputs[0].get("Format/Datatype", "")))
        weights = _dtype(json.dumps(layer.get("Weights", "")))
        if compute == "fp16" and weights == "int4":
            return "int4w-fp16"
        return compute or "unknown"
    return NOT_FOUND


def engine_differences(
    layers: Sequence[Mapping[str, Any]],
) -> list[dict[str, str]]:
    """Every exported layer whose engine precision is not its graph precision."""
    return [
        {
            "name": layer["name"],
            "expected": layer["precision"],
            "engine": layer["engine_precision"],
        }
        for layer in layers
        if layer.get("engine_precision") is not None
        and layer["engine_precision"] != layer["precision"]
    ]
