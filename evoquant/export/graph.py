"""FP32 ONNX of a module, as torch.export sees it, and where each named layer landed in it.

The graph keeps BatchNorm separate from the convolutions (no fusion), so a weight
initializer is exactly the module's weight and the QuantTable's scales apply to it
unchanged; TensorRT folds the BatchNorm itself at build time. Constant folding
removes shape arithmetic (e.g. the zero bias torch.export adds to bias-free
convolutions) but never touches a weight, which keeps its parameter name.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterable
from typing import Any

import onnx
import torch
from onnxscript import ir, optimizer
from torch import nn

from evoquant.errors import UserError
from evoquant.export.axes import Axes, bind, dynamic_shapes, name_axes, named_tensors
from evoquant.problem import BATCH_AXIS

OPSET = 21
"""INT4 and blocked QuantizeLinear/DequantizeLinear need opset 21."""

NAMESPACE = "namespace"
"""The exporter's node metadata ``": Root/fqn: Class/.../op: aten.op"``: the module a node came from."""


def export_fp32(
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    weights: Iterable[str],
    label: str,
    axes: Axes = BATCH_AXIS,
) -> onnx.ModelProto:
    """The module traced on ``args``/``kwargs`` at opset 21; ``weights`` (initializer names) stay untouched.

    Inputs are named as ``axes.named_tensors`` names them, and the ``axes`` the problem
    declares stay symbolic where the model allows. ``torch.export`` traces first: given
    the module, ``torch.onnx.export`` would read a trailing dict argument (a batch
    passed whole, as sentence-embedding models take it) as the keyword arguments.
    """
    bound = bind(module, args, kwargs)
    named = named_tensors(bound)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            program = torch.export.export(
                module,
                args,
                kwargs,
                dynamic_shapes=dynamic_shapes(bound, axes),
                strict=False,
            )
            onnx_program = torch.onnx.export(
                program,
                input_names=list(named),
                dynamo=True,
                opset_version=OPSET,
                optimize=False,
                verbose=False,
            )
    except Exception as error:  # many types, all meaning "cannot trace"
        raise UserError(
            f"{label}: ONNX export failed ({_root_cause(error)}); "
            "declare Problem.export_parts to export the traceable sub-networks"
        ) from error
    model = onnx_program.model
    protected = set(weights)

    def keep_weights(node: ir.Node) -> bool | None:
        if node.op_type != "Shape" and any(
            value is not None and value.name in protected for value in node.inputs
        ):
            return False
        return None

    folding = logging.getLogger("onnxscript.optimizer")
    level = folding.level
    folding.setLevel(logging.ERROR)  # "Evaluation failed" on symbolic shapes: not ours
    try:
        optimizer.fold_constants(model, should_fold=keep_weights)
    finally:
        folding.setLevel(level)
    optimizer.remove_unused_nodes(model)
    proto = ir.serde.serialize_model(model)
    name_axes(proto, named, axes)
    return proto


def _root_cause(error: BaseException) -> str:
    """The innermost cause's first line, without the exporter's terminal colours."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().partition("\n")[0]
    return f"{type(error).__name__}: {text}"


def node_module(node: onnx.NodeProto) -> str | None:
    """Dotted path (relative to the exported module) of the module that emitted ``node``."""
    for prop in node.metadata_props:
        if prop.key == NAMESPACE:
            scopes = [segment.split(": ", 1)[0] for segment in prop.value.split("/")]
            return scopes[-2] if len(scopes) >= 2 else ""
    return None
