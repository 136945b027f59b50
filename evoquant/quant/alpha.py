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

Block-wise weights (``quant.weights.granularity: block``) get one alpha_w per block
by default: each block's vote goes to the alpha of least ``||X_b (W_b - W^_b)^T||^2``,
the block's own share of the layer's output error (``X_b`` the inputs its weights
multiply), at the cost of the same one layer product per alpha.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evoquant.config import LEGACY_WEIGHTS, WeightConfig
from evoquant.quant.blockwise import BLOCK_MAX_BITS
from evoquant.quant.calibrate import (
    InputRange,
    layer_hooks,
    main_module_groups,
    run_batches,
)
from evoquant.quant.fakequant import fake_quantize
from evoquant.quant.layers import Layer, layer_forward
from evoquant.quant.progress import CalibrationProgress
from evoquant.quant.qparams import input_qparams, quantize_weight, weight_qparams

BitConfig = tuple[int, int]


@dataclass
class AlphaSearch:
    """Winner counts over the grid, per (layer, weight bits) and (layer, bit config).

    A per-block weight count is ``(grid, out_channels, blocks)``, its alpha one per block.
    """

    grid: list[float]
    weight_counts: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    input_counts: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)

    def _mean(self, counts: np.ndarray | None) -> float | Tensor:
        if counts is None:
            return 1.0
        if counts.ndim == 3:
            votes = counts.sum(0)
            weighted = np.tensordot(self.grid, counts, axes=1)
            means = np.where(votes > 0, weighted / np.maximum(votes, 1), 1.0)
            return torch.from_numpy(means).float()
        if counts.sum() == 0:
            return 1.0
        return float(np.dot(counts, self.grid) / counts.sum())

    def alpha_w(self, layer: str, weight_bits: int) -> float | Tensor:
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

    def vote_blocks(self, counts: dict, key: tuple, errors: Tensor) -> None:
        """One vote per block from ``(grid, out_channels, blocks)`` errors; ties abstain."""
        winners = F.one_hot(errors.argmin(0), len(self.grid)).permute(2, 0, 1)
        winners = winners * (errors.amax(0) > errors.amin(0))
        total = counts.setdefault(key, np.zeros(errors.shape, dtype=np.int64))
        total += winners.cpu().numpy()


def _mse(a: Tensor, b: Tensor) -> float:
    return torch.mean((a - b) ** 2).item()


def reduction_inputs(module: nn.Module, x: Tensor) -> Tensor | None:
    """The layer's input as ``(products, K)`` rows that meet each weight row, or None
    where that is not one matrix product (grouped or non-zero-padded convolutions)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, module.in_features)
    if (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    ):
        columns = F.unfold(
            x, module.kernel_size, module.dilation, module.padding, module.stride
        )
        return columns.transpose(1, 2).reshape(-1, columns.shape[1])
    return None


def block_errors(weight: Tensor, x: Tensor, quantizers: Sequence) -> Tensor:
    """``(len(quantizers), out_channels, blocks)``: each block's output error energy."""
    rows = weight.reshape(weight.shape[0], -1)
    errors = []
    for qp in quantizers:
        delta = rows - quantize_weight(weight, qp).reshape(rows.shape)
        starts = range(0, rows.shape[1], qp.block_size)
        errors.append(
            torch.stack(
                [
                    (x[:, s : s + qp.block_size] @ delta[:, s : s + qp.block_size].T)
                    .square_()
                    .sum(0)
                    for s in starts
                ],
                dim=1,
            )
        )
    return torch.stack(errors)


def stage2_work(
    layers: Sequence[Layer],
    batches: int,
    bit_configs: Sequence[BitConfig],
    grid: Sequence[float],
) -> int:
    """Layer forwards ``search_alphas`` runs (what its progress counts)."""
    if len(grid) <= 1:
        return 0
    widths = len({w for w, _ in bit_configs})
    weighted = sum(1 for layer in layers if layer.num_weights)
    return batches * len(grid) * (weighted * widths + len(layers) * len(bit_configs))


def search_alphas(
    model: nn.Module,
    layers: Sequence[Layer],
    ranges: dict[str, list[InputRange]],
    run: Callable,
    batches: Sequence,
    bit_configs: Sequence[BitConfig],
    scheme: str,
    grid: Sequence[float],
    weights: WeightConfig = LEGACY_WEIGHTS,
    progress: CalibrationProgress | None = None,
) -> AlphaSearch:
    """Count, batch by batch, which alpha on the grid minimises each layer's output MSE."""
    search = AlphaSearch(list(grid))
    weight_widths = sorted({w for w, _ in bit_configs})
    block = weights.block
    progress = progress or CalibrationProgress(0, stream=None)

    def per_block(bits: int) -> bool:
        return (
            block is not None
            and bits <= BLOCK_MAX_BITS
            and weights.block_alpha == "per_block"
        )

    def weight_pass(
        layer: Layer, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ):
        for bits in weight_widths:
            quantizers = [
                weight_qparams(module.weight, bits, scheme, alpha, block)
                for alpha in search.grid
            ]
            x = reduction_inputs(module, inputs[0]) if per_block(bits) else None
            if x is not None:
                search.vote_blocks(
                    search.weight_counts,
                    (layer.name, bits),
                    block_errors(module.weight, x, quantizers),
                )
            else:
                errors = [
                    _mse(
                        layer_forward(
                            module, inputs, quantize_weight(module.weight, qp)
                        ),
                        output,
                    )
                    for qp in quantizers
                ]
                search.vote(search.weight_counts, (layer.name, bits), errors)
            progress.step(len(search.grid), f"alpha_w of {layer.name} at W{bits}")

    def input_pass(
        layer: Layer, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor
    ):
        for w_bits, a_bits in bit_configs:
            weight = None
            if layer.num_weights:
                alpha_w = search.alpha_w(layer.name, w_bits)
                weight = quantize_weight(
                    module.weight,
                    weight_qparams(module.weight, w_bits, scheme, alpha_w, block),
                )
            errors = []
            for alpha in search.grid:
                quantized = [
                    fake_quantize(x, input_qparams(observed, a_bits, scheme, alpha))
                    for x, observed in zip(inputs, ranges[layer.name])
                ]
                errors.append(_mse(layer_forward(module, quantized, weight), output))
            search.vote(search.input_counts, (layer.name, w_bits, a_bits), errors)
            progress.step(
                len(search.grid), f"alpha_a of {layer.name} at W{w_bits}A{a_bits}"
            )

    if len(search.grid) > 1:
        for _, group in main_module_groups(layers):
            weighted = [layer for layer in group if layer.num_weights]
            with layer_hooks(model, weighted, weight_pass):
                run_batches(model, run, batches)
            with layer_hooks(model, group, input_pass):
                run_batches(model, run, batches)
    return search
