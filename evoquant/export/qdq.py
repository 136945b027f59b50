"""Explicit quantization written into an FP32 ONNX graph, as TensorRT's strongly typed mode reads it.

Per layer and deployed config (the QuantTable entry of that config gives the scales):

* W8A8: ``QuantizeLinear -> DequantizeLinear`` on the weight initializer (INT8, per
  output channel, axis 0) and on every activation input (INT8, per tensor);
  symmetric, written as opset 21 allows (``output_dtype`` INT8, no zero-point input;
  see ``_int8_pair``). The layer itself stays FP32-typed; TensorRT fuses the pairs
  into an INT8 kernel.
* W16A16: ``Cast`` to FP16 on every activation input, FP16 copies of weight and bias,
  and a ``Cast`` back to FP32 after the layer, so the layer is FP16-typed.
* W4A16: the weight as an INT4 initializer with per-block FP16 scales
  (``DequantizeLinear`` with ``block_size`` along the input features) and FP16
  activations as above. The INT4 values are the table's codes and the block scales
  its block scales (a per-channel table's row scale, repeated), so the dequantized
  weight is the searched fake-quantized weight.

Weight quantization nodes depend only on initializers and open the graph; activation
nodes sit right before their layer. Every inserted node and the layer's own node are
named ``<layer>::...`` (``<layer>#k`` for the k-th call of a layer used more than
once), which is how the engine report finds them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from evoquant.errors import UserError
from evoquant.export.graph import OPSET, node_module
from evoquant.quant.codes import integers
from evoquant.quant.fakequant import QParams
from evoquant.quant.qparams import WeightQParams
from evoquant.quant.table import LayerEntry
from evoquant.targets import BitConfig

COMPUTE_OPS = {"conv2d": ("Conv",), "linear": ("Gemm", "MatMul"), "matmul": ("MatMul",)}
"""The ONNX ops a layer kind is exported as."""

WEIGHT_PATH_OPS = ("Transpose", "Identity")
"""Ops allowed between a weight initializer and its layer (``F.linear`` on 3-D inputs transposes)."""


@dataclass(frozen=True)
class LayerQuant:
    """One layer of an exported graph and the table entry of its deployed config."""

    name: str
    """Dotted path inside the exported module."""
    label: str
    """The layer's name in the whole model, which names its nodes."""
    kind: str
    deployed: BitConfig
    entry: LayerEntry
    block_size: int | None


def weight_initializer(layer: str) -> str:
    """The exported name of a layer's weight: its parameter path inside the exported module."""
    return f"{layer}.weight" if layer else "weight"


def compute_node_name(layer: str, op_type: str, call: int | None = None) -> str:
    """The name a layer's own node gets in the quantized graph."""
    prefix = layer if call is None else f"{layer}#{call}"
    return f"{prefix}::{op_type}"


def compute_node_names(model: onnx.ModelProto, layer: str) -> list[str]:
    """The nodes of a quantized graph that are ``layer`` itself (see ``compute_node_name``)."""
    ops = {op for kind_ops in COMPUTE_OPS.values() for op in kind_ops}
    return [
        node.name
        for node in model.graph.node
        if node.op_type in ops and node.name.rsplit("::", 1)[0].split("#")[0] == layer
    ]


def quantize_graph(
    model: onnx.ModelProto, layers: Sequence[LayerQuant]
) -> onnx.ModelProto:
    """A copy of ``model`` with each layer quantized as its deployed config says."""
    editor = _Editor(model)
    for layer in layers:
        editor.quantize(layer)
    return editor.finish()


def _symmetric(qp: QParams, bits: int, layer: str) -> None:
    """Refuse quantizers TensorRT cannot take: zero-points other than 0, another grid."""
    grid = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if bool((qp.zero_point != 0).any()) or (qp.qmin, qp.qmax) != grid:
        raise UserError(
            f"layer {layer}: quantizer is not symmetric {bits}-bit (zero-point 0, "
            f"range {grid}); export needs a table of the tensorrt scheme"
        )


def int4_block_scales(
    qp: WeightQParams, features: int, block_size: int, layer: str
) -> np.ndarray:
    """FP16 scales ``(out, features / block_size)`` of the table's INT4 quantizer:
    its own blocks, or one row scale repeated over the blocks."""
    scale = qp.scale.detach().cpu().float()
    if scale.ndim == 1:
        scale = scale[:, None]
    if scale.shape[1] == 1:
        return scale.repeat(1, features // block_size).half().numpy()
    if getattr(qp, "block_size", None) != block_size:
        raise UserError(
            f"layer {layer}: the table's INT4 blocks are {qp.block_size} wide, the "
            f"deployment's {block_size}: export with the quant.weights.block_size "
            "the run was searched with"
        )
    return scale.half().numpy()


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def _int8_pair(
    source: str, scale: str, base: str, axis: int | None = None
) -> list[onnx.NodeProto]:
    """``QuantizeLinear -> DequantizeLinear`` to symmetric INT8, named ``<base>::...``.

    The zero-point is left out and ``output_dtype`` says INT8 (opset 21's way of
    writing a symmetric quantizer). An INT8 zero-point input, all zeros anyway, is
    what made default-optimised onnxruntime refuse Linear layers on 3-D inputs: its
    MatMul+Add fusion puts a Reshape after the DequantizeLinear, QDQ propagation
    copies the pair past it with ``output_dtype`` INT8 on the new Q, and the S8->U8
    rewrite then turns that Q's zero-point into UINT8, a type clash. Without a
    zero-point the rewrite leaves the pair alone; TensorRT reads INT8 from either form.
    """
    per_axis = {} if axis is None else {"axis": axis}
    return [
        helper.make_node(
            "QuantizeLinear",
            [source, scale],
            [f"{base}::q"],
            name=f"{base}::QuantizeLinear",
            output_dtype=TensorProto.INT8,
            **per_axis,
        ),
        helper.make_node(
            "DequantizeLinear",
            [f"{base}::q", scale],
            [f"{base}::dq"],
            name=f"{base}::DequantizeLinear",
            **per_axis,
        ),
    ]


class _Editor:
    """Collects insertions around the nodes of one graph, then writes them in topological order."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.nodes = [self._copy(node) for node in self.model.graph.node]
        self.initializers = {t.name: t for t in self.model.graph.initializer}
        self.producers = {out: node for node in self.nodes for out in node.output}
        self.head: list[onnx.NodeProto] = []
        self.before: dict[int, list[onnx.NodeProto]] = defaultdict(list)
        self.after: dict[int, list[onnx.NodeProto]] = defaultdict(list)
        self.added: list[onnx.TensorProto] = []

    @staticmethod
    def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        return copy

    def _initializer(self, name: str, array: np.ndarray) -> str:
        if name not in self.initializers:
            tensor = numpy_helper.from_array(array, name)
            self.initializers[name] = tensor
            self.added.append(tensor)
        return name

    def _weight_reader(
        self, node: onnx.NodeProto
    ) -> tuple[onnx.NodeProto, int, str] | None:
        """The node and input index reading the initializer behind ``node``'s input 1."""
        reader, index = node, 1
        while len(reader.input) > index:
            name = reader.input[index]
            if name in self.initializers:
                return reader, index, name
            producer = self.producers.get(name)
            if producer is None or producer.op_type not in WEIGHT_PATH_OPS:
                return None
            reader, index = producer, 0
        return None

    def _computes(self, layer: LayerQuant) -> list[onnx.NodeProto]:
        ops = COMPUTE_OPS[layer.kind]
        found = [
            n for n in self.nodes if n.op_type in ops and node_module(n) == layer.name
        ]
        if layer.kind != "matmul":
            weight = weight_initializer(layer.name)
            found = [
                n
                for n in found
                if (self._weight_reader(n) or (None, 0, ""))[2] == weight
            ]
        if not found:
            raise UserError(
                f"layer {layer.label} is not in the exported graph as {'/'.join(ops)} "
                "(tracing drops a layer whose output is never used: exclude it with "
                "layers.exclude)"
            )
        return found

    def quantize(self, layer: LayerQuant) -> None:
        computes = self._computes(layer)
        if layer.kind != "matmul":
            readers = [self._weight_reader(node) for node in computes]
            weight = self._quantize_weight(layer)
            for reader, index, _ in readers:
                reader.input[index] = weight
        inputs = (0, 1) if layer.kind == "matmul" else (0,)
        for call, node in enumerate(computes):
            prefix = layer.label if len(computes) == 1 else f"{layer.label}#{call}"
            node.name = compute_node_name(
                layer.label, node.op_type, None if len(computes) == 1 else call
            )
            for i in inputs:
                node.input[i] = self._quantize_input(layer, node, i, prefix)
            if layer.deployed[1] == 16:
                self._fp16_layer(layer, node, prefix, len(inputs))

    def _quantize_input(
        self, layer: LayerQuant, node: onnx.NodeProto, i: int, prefix: str
    ) -> str:
        qp = layer.entry.input_qparams[i]
        source, base = node.input[i], f"{prefix}::input{i}"
        if qp.fp16:
            self.before[id(node)].append(
                helper.make_node(
                    "Cast",
                    [source],
                    [base],
                    name=f"{base}::Cast",
                    to=TensorProto.FLOAT16,
                )
            )
            return base
        _symmetric(qp, 8, layer.label)
        scale = self._initializer(
            f"{layer.label}::input{i}::scale", _array(qp.scale).reshape(())
        )
        self.before[id(node)] += _int8_pair(source, scale, base)
        return f"{base}::dq"

    def _quantize_weight(self, layer: LayerQuant) -> str:
        """The tensor that replaces the FP32 weight: Q/DQ, INT4 DQ or an FP16 copy."""
        name, base = weight_initializer(layer.name), f"{layer.label}::weight"
        weight = numpy_helper.to_array(self.initializers[name])
        bits = layer.deployed[0]
        if bits == 16:
            return self._initializer(f"{base}::fp16", weight.astype(np.float16))
        qp = layer.entry.weight_qparams
        _symmetric(qp, bits, layer.label)
        if bits == 4:
            return self._int4_weight(layer, base)
        scale = _array(qp.scale)
        scale_name = self._initializer(f"{base}::scale", scale)
        self.head += _int8_pair(name, scale_name, base, axis=qp.axis)
        return f"{base}::dq"

    def _int4_weight(self, layer: LayerQuant, base: str) -> str:
        """The table's INT4 codes and FP16 block scales."""
        qp = layer.entry.weight_qparams
        values = integers(layer.entry.codes, qp).numpy()
        block_scale = int4_block_scales(
            qp, values.shape[1], layer.block_size, layer.label
        )
        inputs = [
            self._initializer(f"{base}::int4", values.astype(ml_dtypes.int4)),
            self._initializer(f"{base}::scale", block_scale),
            self._initializer(
                f"{base}::zero_point", np.zeros(block_scale.shape, ml_dtypes.int4)
            ),
        ]
        self.head.append(
            helper.make_node(
                "DequantizeLinear",
                inputs,
                [f"{base}::dq"],
                name=f"{base}::DequantizeLinear",
                axis=1,
                block_size=layer.block_size,
            )
        )
        return f"{base}::dq"

    def _fp16_layer(
        self, layer: LayerQuant, node: onnx.NodeProto, prefix: str, activations: int
    ) -> None:
        """FP16 extra inputs (bias) and a cast of the output back to FP32."""
        for j in range(max(activations, 2), len(node.input)):
            source = node.input[j]
            if source in self.initializers:
                array = numpy_helper.to_array(self.initializers[source])
                node.input[j] = self._initializer(
                    f"{prefix}::input{j}::fp16", array.astype(np.float16)
                )
            elif source:
                node.input[j] = f"{prefix}::input{j}"
                self.before[id(node)].append(
                    helper.make_node(
                        "Cast",
                        [source],
                        [node.input[j]],
                        name=f"{prefix}::input{j}::Cast",
                        to=TensorProto.FLOAT16,
                    )
                )
        output = node.output[0]
        node.output[0] = f"{prefix}::output::fp16"
        self.after[id(node)].append(
            helper.make_node(
                "Cast",
                [node.output[0]],
                [output],
                name=f"{prefix}::output::Cast",
                to=TensorProto.FLOAT,
            )
        )

    def finish(self) -> onnx.ModelProto:
        graph = self.model.graph
        order = list(self.head)
        for node in self.nodes:
            order += [*self.before[id(node)], node, *self.after[id(node)]]
        graph.ClearField("node")
        graph.node.extend(order)
        used = {name for node in order for name in node.input}
        used |= {output.name for output in graph.output}
        for index in reversed(range(len(graph.initializer))):
            if graph.initializer[index].name not in used:  # FP32 weights now unread
                del graph.initializer[index]
        graph.initializer.extend(t for t in self.added if t.name in used)
        for opset in self.model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = max(opset.version, OPSET)
        return self.model
