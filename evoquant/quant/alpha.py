"""Stage 2: per-layer grid search of the scale factors alpha_w and alpha_a.

For every layer and bit configuration the search minimises the MSE between the
layer's FP32 output and its quantized output, batch by batch; only the count of
each batch's winning alpha is kept, and the final alpha is the
occurrence-weighted mean (docs/method.md).

Sequential rather than joint grid: alpha_w is searched first with FP32 inputs
(so it depends only on the weight bit-width), then alpha_a with that final
alpha_w. That costs ``len(grid)`` layer forwards per weight width plus
``len(grid)`` per bit config and batch (21 + 21 with the default grid), where a
joint grid would cost 21 * 21 = 441 per config. As in stage 1, each main module
is processed in turn with the whole model running in FP32 upstream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from evoquant.quant.calibrate import (
    InputRange,
    layer_hooks,
    main_module_groups,
    run_batches,
)
from evoquant.quant.fakequant import fake_quantize
from evoquant.quant.layers import Layer, layer_forward
from evoquant.quant.qparams import input_qparams, weight_qparams

BitConfig = tuple[int, int]


@dataclass
class AlphaSearch:
    """Winner counts over the grid, per (layer, weight bits) and (layer, bit config)."""

    grid: list[float]
    weight_counts: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    input_counts: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)

    def _mean(self, counts: np.ndarray | None) -> float:
        if counts is None or counts.sum() == 0:
            return 1.0
        return float(np.dot(counts, self.grid) / counts.sum())

    def alpha_w(self, layer: str, weight_bits: int) -> float:
        return self._mean(self.weight_counts.get((layer, weight_bits)))

    def alpha_a(self, layer: str, config: BitConfig) -> float:
        return self._mean(self.input_counts.get((layer, *config)))

    def vote(self, counts: dict, key: tuple, errors: list[float]) -> None:
        """Count the batch's winner; a batch where every alpha ties (FP16) says nothing."""
        if max(errors) == min(errors):
            return
        counts.setdefault(key, np.zeros(len(self.grid), dtype=np.int64))[
            int(np.argmin(errors))
        ] += 1


def _mse(a: Tensor, b: Tensor) -> float:
    return torch.mean((a - b) ** 2).item()


def search_alphas(
    model: nn.Module,
    layers: Sequence[Layer],
    ranges: dict[str, list[InputRange]],
    run: Callable,
    batches: Sequence,
    bit_configs: Sequence[BitConfig],
    scheme: str,
    grid: Sequence[float],
) -> AlphaSearch:
    """Count, batch by batch, which alpha on the grid minimises each layer's output MSE."""
    search = AlphaSearch(list(grid))
    weight_widths = sorted({w for w, _ in bit_configs})

    def weight_pass(
        layer: Layer, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ):
        for bits in weight_widths:
            errors = [
                _mse(
                    layer_forward(
                        module,
                        inputs,
                        fake_quantize(
                            module.weight,
                            weight_qparams(module.weight, bits, scheme, alpha),
                        ),
                    ),
                    output,
                )
                for alpha in search.grid
            ]
            search.vote(search.weight_counts, (layer.name, bits), errors)

    def input_pass(
        layer: Layer, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ):
        for w_bits, a_bits in bit_configs:
            weight = None
            if layer.num_weights:
                alpha_w = search.alpha_w(layer.name, w_bits)
                weight = fake_quantize(
                    module.weight,
                    weight_qparams(module.weight, w_bits, scheme, alpha_w),
                )
            errors = []
            for alpha in search.grid:
                quantized = [
                    fake_quantize(x, input_qparams(observed, a_bits, scheme, alpha))
                    for x, observed in zip(inputs, ranges[layer.name])
                ]
                errors.append(_mse(layer_forward(module, quantized, weight), output))
            search.vote(search.input_counts, (layer.name, w_bits, a_bits), errors)

    if len(search.grid) > 1:
        for _, group in main_module_groups(layers):
            weighted = [layer for layer in group if layer.num_weights]
            with layer_hooks(model, weighted, weight_pass):
                run_batches(model, run, batches)
            with layer_hooks(model, group, input_pass):
                run_batches(model, run, batches)
    return search
