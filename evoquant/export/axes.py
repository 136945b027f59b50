"""A graph's inputs by name, and which of their axes the exported graph leaves free.

Every tensor a part receives becomes one graph input, named by where it sits in the
call: the ``forward`` parameter (``input_ids``), then dict keys or list positions
(``input.attention_mask``). The same names feed onnxruntime, so a call's tensors reach
the right inputs however the caller ordered its keywords.

``Problem.dynamic_axes`` maps glob patterns on these names to ``{axis: name}``. The
exporter keeps each such axis symbolic where the model allows it (``Dim.AUTO``): a
model that fixes an axis (a view to a constant size) keeps it fixed, which is fine
unless the captured calls need it to vary, and that is refused in one line.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

import onnx
from torch import Tensor, nn
from torch.export import Dim

from evoquant.errors import UserError

Axes = Mapping[str, Mapping[int, str]]


def bind(module: nn.Module, args: tuple, kwargs: dict) -> inspect.BoundArguments:
    """The call's arguments by ``forward``'s parameter names."""
    try:
        return inspect.signature(module.forward).bind(*args, **kwargs)
    except TypeError as error:
        raise UserError(
            f"{type(module).__name__}.forward does not take the captured call: {error}"
        ) from None


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}.{i}")


def named_tensors(bound: inspect.BoundArguments) -> dict[str, Tensor]:
    """Every tensor of the call, named by its path (a ``**kwargs`` key stands alone)."""
    named: dict[str, Tensor] = {}
    parameters = bound.signature.parameters
    for name, value in bound.arguments.items():
        if parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            for key, item in value.items():
                named.update(_leaves(item, key))
        else:
            named.update(_leaves(value, name))
    return named


def declared(name: str, tensor: Tensor, axes: Axes) -> dict[int, str]:
    """The axes of input ``name`` the problem declares dynamic (within its rank)."""
    found: dict[int, str] = {}
    for pattern, spec in axes.items():
        if fnmatchcase(name, pattern):
            found |= {int(a): n for a, n in spec.items() if 0 <= int(a) < tensor.ndim}
    return found


def dynamic_shapes(bound: inspect.BoundArguments, axes: Axes) -> dict[str, Any]:
    """``torch.export``'s ``dynamic_shapes`` for the call: ``Dim.AUTO`` on every declared axis."""

    def spec(value: Any, path: str) -> Any:
        if isinstance(value, Tensor):
            dims = declared(path, value, axes)
            return {axis: Dim.AUTO for axis in dims} or None
        if isinstance(value, Mapping):
            return {k: spec(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(spec(v, f"{path}.{i}") for i, v in enumerate(value))
        return None

    parameters = bound.signature.parameters
    return {
        name: (
            {k: spec(v, k) for k, v in value.items()}
            if parameters[name].kind is inspect.Parameter.VAR_KEYWORD
            else spec(value, name)
        )
        for name, value in bound.arguments.items()
    }


def unmatched(patterns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The patterns that match none of ``names``."""
    return [p for p in patterns if not any(fnmatchcase(n, p) for n in names)]


def name_axes(model: onnx.ModelProto, named: Mapping[str, Tensor], axes: Axes) -> None:
    """Give the exporter's symbolic dimensions the declared names, everywhere in the graph.

    Two different symbols declared under one name (two inputs whose batch sizes the
    model never ties together) keep apart as ``name`` and ``name_2``.
    """
    renamed: dict[str, str] = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, wanted in declared(value.name, named[value.name], axes).items():
            symbol = dims[axis].dim_param
            if symbol and symbol not in renamed:
                taken = set(renamed.values())
                label, k = wanted, 1
                while label in taken:
                    k += 1
                    label = f"{wanted}_{k}"
                renamed[symbol] = label
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]


def check_varying_axes(
    label: str, model: onnx.ModelProto, calls: Sequence[Mapping[str, Tensor]]
) -> None:
    """Refuse a graph with a fixed axis that the captured calls need to vary."""
    for value in model.graph.input:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param:
                continue
            sizes = sorted({tuple(c[value.name].shape)[axis] for c in calls})
            if len(sizes) > 1:
                raise UserError(
                    f"{label}: input {value.name} axis {axis} is {sizes[0]}..{sizes[-1]} "
                    f"across the fitness batches but the graph fixes it at "
                    f"{dim.dim_value}: declare it in Problem.dynamic_axes (or the model "
                    "fixes it, e.g. by a view to a constant size)"
                )
