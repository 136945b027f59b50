"""Quantizers for one layer: weight ranges from the tensor, input ranges from calibration."""

from __future__ import annotations

from torch import Tensor

from evoquant.quant.calibrate import ChannelRange
from evoquant.quant.fakequant import QParams, compute_qparams

WEIGHT_AXIS = 0
"""Weights are quantized per output channel (dim 0 of Conv2d and Linear weights)."""


def weight_qparams(
    weight: Tensor, bits: int, scheme: str, alpha: float = 1.0
) -> QParams:
    channels = weight.detach().reshape(weight.shape[WEIGHT_AXIS], -1)
    return compute_qparams(
        channels.amin(dim=1), channels.amax(dim=1), bits, scheme, WEIGHT_AXIS, alpha
    )


def input_qparams(
    observed: ChannelRange, bits: int, scheme: str, alpha: float = 1.0
) -> QParams:
    """Per channel for the thesis scheme; per tensor for TensorRT, which only runs that."""
    if scheme == "tensorrt":
        return compute_qparams(
            observed.min.min(), observed.max.max(), bits, scheme, None, alpha
        )
    return compute_qparams(
        observed.min, observed.max, bits, scheme, observed.axis, alpha
    )
