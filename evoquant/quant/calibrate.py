"""Stage 1: per-module min/max calibration of every quantizable layer's inputs.

The thesis calibrates one top-level child ("main module") at a time so that only
that module's statistics live in memory. We do the same: for each main module in
genome order, every calibration batch runs through the *whole FP32 model* (no
quantization is installed during calibration), so the module being calibrated
always sees FP32 inputs from upstream; hooks on its layers fold each input into
running per-channel min/max vectors and drop the tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby

import torch
from torch import Tensor, nn

from evoquant.errors import UserError
from evoquant.quant.layers import Layer


@dataclass
class ChannelRange:
    """Running per-channel minimum and maximum of a tensor stream along one axis."""

    axis: int
    min: Tensor | None = None
    max: Tensor | None = None

    def update(self, x: Tensor) -> None:
        channels = (
            x.detach().float().movedim(self.axis, -1).reshape(-1, x.shape[self.axis])
        )
        batch_min, batch_max = torch.aminmax(channels, dim=0)
        if self.min is None:
            self.min, self.max = batch_min, batch_max
        else:
            self.min = torch.minimum(self.min, batch_min)
            self.max = torch.maximum(self.max, batch_max)


Hook = Callable[[Layer, nn.Module, tuple[Tensor, ...], Tensor], None]


def main_module_groups(layers: Sequence[Layer]) -> Iterator[tuple[str, list[Layer]]]:
    """Layers grouped by their top-level child, in genome order."""
    for name, group in groupby(layers, key=lambda layer: layer.main_module):
        yield name, list(group)


@contextmanager
def layer_hooks(
    model: nn.Module, layers: Sequence[Layer], hook: Hook
) -> Iterator[None]:
    """Call ``hook(layer, module, inputs, output)`` after each forward of the given layers."""
    modules = dict(model.named_modules())
    handles = [
        modules[layer.name].register_forward_hook(
            lambda module, inputs, output, layer=layer: hook(
                layer, module, inputs, output
            )
        )
        for layer in layers
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_batches(model: nn.Module, run: Callable, batches: Sequence) -> None:
    with torch.no_grad():
        for batch in batches:
            run(model, batch)


def calibrate_ranges(
    model: nn.Module, layers: Sequence[Layer], run: Callable, batches: Sequence
) -> dict[str, list[ChannelRange]]:
    """Per layer, one running per-channel range for each tensor input (two for a MatMul)."""
    ranges: dict[str, list[ChannelRange]] = {}

    def observe(
        layer: Layer, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ) -> None:
        observers = ranges.setdefault(
            layer.name, [ChannelRange(layer.input_axis) for _ in inputs]
        )
        for observer, x in zip(observers, inputs):
            observer.update(x)

    for _, group in main_module_groups(layers):
        with layer_hooks(model, group, observe):
            run_batches(model, run, batches)
    missing = [layer.name for layer in layers if layer.name not in ranges]
    if missing:
        raise UserError(
            f"calibration never ran layer(s) {', '.join(missing[:3])}: add them to layers.exclude"
        )
    return ranges
