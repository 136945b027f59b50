"""Which sub-networks become ONNX graphs, which layers each holds, and what each sees on real data.

A part's example inputs are not declared but captured: hooks on its module record
every call while the problem's ``run`` processes batches, so export and validation
use exactly what the part receives inside the model (after any upstream quantization,
before the part's own layers quantize it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from evoquant.errors import UserError
from evoquant.problem import ExportPart
from evoquant.quant.layers import Layer

WHOLE_MODEL = ExportPart("model", "")


@dataclass(frozen=True)
class Part:
    """An exported sub-network: its declaration, its module and the layers inside it."""

    spec: ExportPart
    module: nn.Module
    layers: tuple[Layer, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    def relative(self, layer: str) -> str:
        """A layer's dotted path inside the part (its name in the part's ONNX graph)."""
        prefix = self.spec.module
        return layer if not prefix else layer[len(prefix) :].removeprefix(".")


@dataclass(frozen=True)
class Call:
    """One call of a part's module: its inputs and its output."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any


def _inside(layer: str, module: str) -> bool:
    return not module or layer == module or layer.startswith(module + ".")


def resolve_parts(
    model: nn.Module, specs: Sequence[ExportPart], layers: Sequence[Layer]
) -> list[Part]:
    """The declared parts (or the whole model), each with its layers; overlaps are refused."""
    specs = list(specs) or [WHOLE_MODEL]
    modules = dict(model.named_modules())
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise UserError(f"export parts must have distinct names, got {names}")
    for spec in specs:
        if spec.module not in modules:
            raise UserError(
                f"export part {spec.name}: the model has no module {spec.module!r}"
            )
        for other in specs:
            if other is not spec and _inside(other.module, spec.module):
                raise UserError(
                    f"export parts {spec.name} and {other.name} overlap: a module may be in one part"
                )
    return [
        Part(
            spec,
            modules[spec.module],
            tuple(layer for layer in layers if _inside(layer.name, spec.module)),
        )
        for spec in specs
    ]


def tensors(value: Any) -> list[Tensor]:
    """The tensors in nested tuples, lists and dicts, in the order torch.export flattens them."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors(item)]
    return []


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(item) for item in value)
    return value


def capture_calls(
    model: nn.Module,
    run: Callable[[nn.Module, Any], Any],
    batches: Sequence[Any],
    parts: Sequence[Part],
) -> dict[str, list[Call]]:
    """Every call of each part while ``run`` processes ``batches``, inputs and outputs copied."""
    calls: dict[str, list[Call]] = {part.name: [] for part in parts}
    handles = []
    for part in parts:
        pending: list[tuple[tuple, dict]] = []

        def before(module, args, kwargs, pending=pending):
            pending.append((_clone(args), _clone(kwargs)))

        def after(module, args, kwargs, output, name=part.name, pending=pending):
            inputs, keywords = pending.pop()
            calls[name].append(Call(inputs, keywords, _clone(output)))

        handles.append(
            part.module.register_forward_pre_hook(
                before, with_kwargs=True, prepend=True
            )
        )
        handles.append(part.module.register_forward_hook(after, with_kwargs=True))
    try:
        with torch.no_grad():
            for batch in batches:
                run(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name, found in calls.items() if not found]
    if missing:
        raise UserError(f"export part(s) {missing} never ran on the fitness batches")
    return calls
