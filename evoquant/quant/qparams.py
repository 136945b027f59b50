"""Quantizers for one layer: weight ranges from the tensor, input ranges from calibration."""

from __future__ import annotations

from torch import Tensor

from evoquant.quant.blockwise import (
    BLOCK_MAX_BITS,
    BlockQParams,
    block_qparams,
    fake_quantize_blocks,
)
from evoquant.quant.calibrate import InputRange
from evoquant.quant.fakequant import QParams, compute_qparams, fake_quantize

WEIGHT_AXIS = 0
"""Weights are quantized per output channel (dim 0 of Conv2d and Linear weights), or
per block of each output channel's row (``blockwise``)."""

WeightQParams = QParams | BlockQParams


def weight_qparams(
    weight: Tensor,
    bits: int,
    scheme: str,
    alpha: float | Tensor = 1.0,
    block_size: int | None = None,
) -> WeightQParams:
    """Per output channel, or per block when ``block_size`` is given and ``bits`` is at
    most ``BLOCK_MAX_BITS``; a tensor ``alpha`` holds one factor per block.

    TensorRT's INT4 per channel is one block per row: the deployed graph has FP16
    block scales (the row's, repeated) either way, and the search models that.
    """
    if bits <= BLOCK_MAX_BITS and (block_size is not None or scheme == "tensorrt"):
        row = weight[0].numel()
        return block_qparams(weight, bits, scheme, block_size or row, alpha)
    channels = weight.detach().reshape(weight.shape[WEIGHT_AXIS], -1)
    return compute_qparams(
        channels.amin(dim=1), channels.amax(dim=1), bits, scheme, WEIGHT_AXIS, alpha
    )


def quantize_weight(weight: Tensor, qp: WeightQParams) -> Tensor:
    """The fake-quantized weight, per channel or per block."""
    if isinstance(qp, BlockQParams):
        return fake_quantize_blocks(weight, qp)
    return fake_quantize(weight, qp)


def input_qparams(
    observed: InputRange, bits: int, scheme: str, alpha: float = 1.0
) -> QParams:
    """The input's calibrated range at ``bits``; always per tensor for TensorRT, which runs
    only that (a per-channel range is folded into its extremes)."""
    low, high = observed.bounds(bits, scheme)
    if scheme == "tensorrt" and observed.axis is not None:
        return compute_qparams(low.min(), high.max(), bits, scheme, None, alpha)
    return compute_qparams(low, high, bits, scheme, observed.axis, alpha)
