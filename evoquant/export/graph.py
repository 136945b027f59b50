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
import re
import warnings
from collections.abc import Iterable
from typing import Any

import onnx
import torch
from onnxscript import ir, optimizer
from torch import nn

from evoquant.errors import UserError

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
) -> onnx.ModelProto:
    """The module traced on ``args``/``kwargs`` at opset 21; ``weights`` (initializer names) stay untouched."""
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                args,
                kwargs=kwargs,
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
    model = program.model
    protected = set(weights)

    def keep_weights(node: ir.Node) -> bool | None:
        if node.op_type != "Shape" and any(
            value is not None and value.name in protected for value in node.inputs
        ):
            return False
        return None

    optimizer.fold_constants(model, should_fold=keep_weights)
    optimizer.remove_unused_nodes(model)
    return ir.serde.serialize_model(model)


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
