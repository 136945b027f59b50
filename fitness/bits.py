"""The memory objective: total weight bits of the quantized layers (F_bits).

A leaf library, like all of ``fitness/``: plain values in, numbers out. It imports
only ``evoquant.errors`` (the bottom of the engine) so that its refusals read as one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from evoquant.errors import UserError


class Layer(Protocol):
    """Anything with a weight count (``evoquant.quant.layers.Layer`` is one)."""

    @property
    def num_weights(self) -> int: ...


FP32_BITS = 32


def _bits_array(
    weight_bits: Sequence[int | None] | np.ndarray, num_layers: int
) -> np.ndarray:
    """Bit-widths as float64, None read as FP32, last axis checked against layers."""
    raw = np.asarray(weight_bits, dtype=object)
    bits = np.where(np.equal(raw, None), FP32_BITS, raw).astype(np.float64)
    if bits.shape[-1:] != (num_layers,):
        raise UserError(
            f"genome has {bits.shape[-1] if bits.ndim else 0} bit-widths "
            f"but the model has {num_layers} quantizable layers"
        )
    return bits


def f_bits(
    layers: Sequence[Layer], weight_bits: Sequence[int | None] | np.ndarray
) -> float | np.ndarray:
    """``sum_l b_l * |W_l|``; weightless MatMul layers count 0 whatever their bits.

    ``weight_bits`` is one genome (a float comes back) or an array of genomes with the
    layers on the last axis (one value per genome comes back). 32 or None is FP32.
    """
    weights = np.array([layer.num_weights for layer in layers], dtype=np.float64)
    total = _bits_array(weight_bits, len(layers)) @ weights
    return float(total) if np.ndim(total) == 0 else total


def bit_metrics(
    layers: Sequence[Layer], weight_bits: Sequence[int | None]
) -> dict[str, float]:
    """F_bits of one genome, and the same cost as ratios to FP32 and in megabytes."""
    fp32_weights = sum(layer.num_weights for layer in layers)
    if fp32_weights == 0:
        raise UserError("no selected layer has weights, so the bit cost is undefined")
    bits = f_bits(layers, weight_bits)
    fp32_bits = FP32_BITS * fp32_weights
    return {
        "f_bits": bits,
        "relative_cost": bits / fp32_bits,
        "compression": fp32_bits / bits,
        "avg_weight_bits": bits / fp32_weights,
        "megabytes": bits / 8 / 1e6,
    }
