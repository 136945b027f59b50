"""A quantized weight stored as what it is: integer codes (packed) and its quantizer.

The QuantTable keeps every weight at every bit width; as float copies that is 4 bytes
per weight and width. As codes it is what the width needs: four 2-bit or two 4-bit
codes per byte, 8-bit codes as bytes, 16-bit ones as int16, and TensorRT's 16 bits
(a cast, not a grid) as FP16 values. ``decode`` gives back the fake-quantized weight
bit for bit: ``(code - Z) * S`` is the same float arithmetic as ``fake_quantize``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from evoquant.quant.blockwise import BlockQParams
from evoquant.quant.fakequant import QParams

PACKED_BITS = (2, 4)
"""Code widths stored several to a byte."""


@dataclass(frozen=True)
class WeightCodes:
    """``packed`` codes (offset to start at 0) of a weight of ``shape``."""

    packed: Tensor
    shape: tuple[int, ...]


def _elementwise(
    qp: QParams | BlockQParams, shape: torch.Size
) -> tuple[Tensor, Tensor]:
    """Scale and zero-point broadcastable against the weight."""
    if isinstance(qp, BlockQParams):
        full = qp.per_element(shape)
        return full.scale, full.zero_point
    view = (-1, *([1] * (len(shape) - 1)))
    return qp.scale.reshape(view), qp.zero_point.reshape(view)


def _width(qp: QParams | BlockQParams) -> int:
    return (qp.qmax - qp.qmin + 1).bit_length() - 1


def _pack(offset: Tensor, bits: int) -> Tensor:
    if bits == 16:
        return (offset - 2**15).to(torch.int16)
    if bits == 8:
        return offset.to(torch.uint8)
    per_byte = 8 // bits
    flat = offset.flatten().to(torch.int32)
    flat = torch.cat([flat, flat.new_zeros(-len(flat) % per_byte)])
    shifts = torch.arange(per_byte, dtype=torch.int32) * bits
    return (flat.view(-1, per_byte) << shifts).sum(1).to(torch.uint8)


def _unpack(packed: Tensor, bits: int, count: int) -> Tensor:
    if bits == 16:
        return packed.to(torch.int32) + 2**15
    if bits == 8:
        return packed.to(torch.int32)
    per_byte = 8 // bits
    shifts = torch.arange(per_byte, dtype=torch.int32) * bits
    values = (packed.to(torch.int32).unsqueeze(1) >> shifts) & (2**bits - 1)
    return values.flatten()[:count]


def encode(weight: Tensor, qp: QParams | BlockQParams) -> WeightCodes:
    """The codes ``fake_quantize`` would round ``weight`` to."""
    weight = weight.detach().float().cpu()
    shape = tuple(weight.shape)
    if isinstance(qp, QParams) and qp.fp16:
        return WeightCodes(weight.half(), shape)
    scale, zero_point = _elementwise(qp, weight.shape)
    codes = torch.round(weight / scale).add_(zero_point).clamp_(qp.qmin, qp.qmax)
    offset = (codes - qp.qmin).to(torch.int32)
    return WeightCodes(_pack(offset, _width(qp)), shape)


def integers(codes: WeightCodes, qp: QParams | BlockQParams) -> Tensor:
    """The integer grid values (``code`` in ``[qmin, qmax]``), shaped as the weight."""
    shape = torch.Size(codes.shape)
    offset = _unpack(codes.packed, _width(qp), shape.numel())
    return offset.reshape(shape) + qp.qmin


def decode(codes: WeightCodes, qp: QParams | BlockQParams) -> Tensor:
    """The fake-quantized FP32 weight the codes stand for."""
    if isinstance(qp, QParams) and qp.fp16:
        return codes.packed.float().reshape(codes.shape)
    scale, zero_point = _elementwise(qp, torch.Size(codes.shape))
    weight = integers(codes, qp).float().sub_(zero_point).mul_(scale)
    if isinstance(qp, BlockQParams) and qp.fp16_output:
        return weight.half().float()
    return weight
