"""Which modules of a model are quantizable, in genome order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from evoquant.errors import UserError
from evoquant.quant.matmul import QuantMatMul

LAYER_KINDS = {nn.Conv2d: "conv2d", nn.Linear: "linear", QuantMatMul: "matmul"}


@dataclass(frozen=True)
class Layer:
    """One gene's layer: its dotted module name, op kind and weight count."""

    name: str
    kind: str
    num_weights: int

    @property
    def main_module(self) -> str:
        """The top-level child the layer belongs to (the thesis's calibration unit)."""
        return self.name.split(".", 1)[0]

    @property
    def input_axis(self) -> int:
        """Channel axis of the layer's input activations."""
        return 1 if self.kind == "conv2d" else -1


def layer_kind(module: nn.Module) -> str | None:
    """The op kind of a quantizable module, None for any other module.

    ``MultiheadAttention.out_proj`` is skipped: attention reads its weight directly
    and never calls it, so hooks on it would never fire.
    """
    if isinstance(module, NonDynamicallyQuantizableLinear):
        return None
    for cls, kind in LAYER_KINDS.items():
        if isinstance(module, cls):
            return kind
    return None


def find_layers(
    model: nn.Module, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Layer]:
    """Every Conv2d, Linear and QuantMatMul in module order, filtered by glob patterns.

    ``include`` (default: everything) and ``exclude`` are ``fnmatch`` patterns on the
    dotted names; a pattern that matches no quantizable layer is a user error.
    """
    candidates = []
    for name, module in model.named_modules():
        kind = layer_kind(module)
        if kind is not None:
            weight = getattr(module, "weight", None)
            candidates.append(
                Layer(name, kind, 0 if weight is None else weight.numel())
            )
    names = [layer.name for layer in candidates]
    for pattern in [*include, *exclude]:
        if not any(fnmatchcase(name, pattern) for name in names):
            raise UserError(f"layer pattern {pattern!r} matches no quantizable layer")
    return [
        layer
        for layer in candidates
        if (not include or any(fnmatchcase(layer.name, p) for p in include))
        and not any(fnmatchcase(layer.name, p) for p in exclude)
    ]


def layer_forward(
    module: nn.Module, inputs: Sequence[Tensor], weight: Tensor | None
) -> Tensor:
    """The layer's own computation with a substitute weight (used by the alpha search)."""
    if isinstance(module, nn.Conv2d):
        return module._conv_forward(inputs[0], weight, module.bias)
    if isinstance(module, nn.Linear):
        return F.linear(inputs[0], weight, module.bias)
    return module.forward(*inputs)  # not module(): that would re-enter our hooks
