"""Quantizers for one layer: weight ranges from the tensor, input ranges from calibration."""

from __future__ import annotations

from torch import Tensor

from evoquant.quant.calibrate import InputRange
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
    observed: InputRange, bits: int, scheme: str, alpha: float = 1.0
) -> QParams:
    """The input's calibrated range at ``bits``; always per tensor for TensorRT, which runs
    only that (a per-channel range is folded into its extremes)."""
    low, high = observed.bounds(bits, scheme)
    if scheme == "tensorrt" and observed.axis is not None:
        return compute_qparams(low.min(), high.max(), bits, scheme, None, alpha)
    return compute_qparams(low, high, bits, scheme, observed.axis, alpha)
