"""Block-wise weight quantizers: one scale (and zero-point) per block of a weight row.

A weight is read as ``(out_channels, K)`` rows, K its reduction size (the input
features of a Linear weight, ``in/groups * kh * kw`` of a Conv2d one, in PyTorch's
memory order). Each row is cut into blocks of ``layer_block_size(K, block_size)``
consecutive values; when that does not divide K the last block is shorter (ragged).
A block's range is its own min and max, and a scale is computed from it exactly as a
per-channel scale is from a row (``compute_qparams``), so a block as wide as the row
is per-channel quantization.

This is what TensorRT's weight-only INT4 runs (``DequantizeLinear`` with
``block_size`` along the input features, FP16 scales): under the ``tensorrt`` scheme
the block scales are rounded to FP16 and the dequantized weight is FP16, as the
deployed graph computes it, so the search sees the deployed weight bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from evoquant.quant.fakequant import QParams, compute_qparams, fake_quantize
from evoquant.targets import layer_block_size

BLOCK_MAX_BITS = 4
"""Block-wise granularity applies to weights of at most this many bits (INT4, INT2);
INT8 and wider weights stay per channel, as TensorRT runs INT8."""


@dataclass(frozen=True)
class BlockQParams:
    """Scales and zero-points of a block-wise weight quantizer, ``(out_channels, blocks)``.

    ``fp16_output``: the dequantized weight is FP16 (TensorRT's INT4 with FP16 scales).
    """

    scale: Tensor
    zero_point: Tensor
    qmin: int
    qmax: int
    block_size: int
    fp16_output: bool = False
    symmetric: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "symmetric", not bool(self.zero_point.any()))

    @property
    def blocks(self) -> int:
        return self.scale.shape[1]

    def per_element(self, weight_shape: torch.Size) -> QParams:
        """The same quantizer as one scale and zero-point per weight value."""
        reduction = weight_shape[1:].numel()

        def expand(values: Tensor) -> Tensor:
            values = values.repeat_interleave(self.block_size, dim=1)[:, :reduction]
            return values.reshape(weight_shape).contiguous()

        return QParams(
            expand(self.scale), expand(self.zero_point), self.qmin, self.qmax, None
        )


def blocks_of(rows: Tensor, block_size: int) -> list[Tensor]:
    """``rows`` ``(out, K)`` as ``(out, n, block_size)`` whole blocks and a ragged rest."""
    whole = rows.shape[1] // block_size * block_size
    parts = [rows[:, :whole].reshape(rows.shape[0], -1, block_size)]
    if whole < rows.shape[1]:
        parts.append(rows[:, whole:].unsqueeze(1))
    return parts


def block_ranges(weight: Tensor, block_size: int) -> tuple[Tensor, Tensor]:
    """Min and max of every block, ``(out_channels, blocks)`` each."""
    rows = weight.detach().reshape(weight.shape[0], -1).float()
    parts = blocks_of(rows, block_size)
    return (
        torch.cat([p.amin(dim=2) for p in parts], dim=1),
        torch.cat([p.amax(dim=2) for p in parts], dim=1),
    )


def block_qparams(
    weight: Tensor,
    bits: int,
    scheme: str,
    block_size: int,
    alpha: float | Tensor = 1.0,
) -> BlockQParams:
    """The block-wise quantizer of ``weight`` at ``bits``; ``alpha`` is one factor for
    every scale or one per block (``(out_channels, blocks)``)."""
    block = layer_block_size(weight[0].numel(), block_size)
    low, high = block_ranges(weight, block)
    qp = compute_qparams(low, high, bits, scheme, 0)
    scale = alpha * qp.scale
    fp16 = scheme == "tensorrt"
    if fp16:  # the deployed graph stores FP16 scales
        scale = scale.half().float()
    return BlockQParams(scale, qp.zero_point, qp.qmin, qp.qmax, block, fp16)


def fake_quantize_blocks(weight: Tensor, qp: BlockQParams) -> Tensor:
    """Quantize and dequantize ``weight`` block by block (round half to even)."""
    out = fake_quantize(weight, qp.per_element(weight.shape))
    return out.half().to(weight.dtype) if qp.fp16_output else out
