"""Quantization math: range -> (scale, zero-point) and round-to-nearest fake quantization.

Two schemes share one representation (`QParams`):

* ``thesis``: uniform affine, asymmetric, per channel or per tensor (docs/method.md)::

      S = (max - min) / (2^b - 1),  Z = round(-min / S)
      x_hat = S * (clamp(round(x / S) + Z, 0, 2^b - 1) - Z)

* ``tensorrt``: what TensorRT's explicit quantization executes: symmetric
  (Z = 0), ``S = amax / (2^(b-1) - 1)``, integers in ``[-2^(b-1), 2^(b-1) - 1]``;
  16 bits means FP16, not INT16.

Alpha multiplies the scale and keeps the zero-point (the thesis applies
"alpha * S and Z"), so it shrinks or widens the range around the exact zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

BIT_WIDTHS = (2, 4, 8, 16)
SCHEMES = ("thesis", "tensorrt")


@dataclass(frozen=True)
class QParams:
    """Scale and zero-point of one quantizer.

    ``scale``/``zero_point`` are 1-D (one entry per channel of ``axis``) or
    0-D (per tensor, ``axis`` None). ``fp16`` marks TensorRT's 16-bit
    precision, a cast rather than an integer grid.
    """

    scale: Tensor
    zero_point: Tensor
    qmin: int
    qmax: int
    axis: int | None
    fp16: bool = False
    symmetric: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # decided once here so that fake_quantize never syncs a GPU to ask
        object.__setattr__(self, "symmetric", not bool(self.zero_point.any()))


def integer_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """The integer grid of a ``bits``-wide quantizer."""
    if bits not in BIT_WIDTHS:
        raise ValueError(f"bit-width {bits} is not one of {BIT_WIDTHS}")
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def compute_qparams(
    min_val: Tensor,
    max_val: Tensor,
    bits: int,
    scheme: str,
    axis: int | None,
    alpha: float = 1.0,
) -> QParams:
    """Scale and zero-point for observed ranges ``[min_val, max_val]``.

    A constant channel (max == min == v) gets ``S = |v|`` (or 1 when v = 0),
    which reproduces v exactly instead of dividing by a zero range.
    """
    min_val = min_val.detach().float()
    max_val = max_val.detach().float()
    if scheme == "thesis":
        qmin, qmax = integer_range(bits, symmetric=False)
        span = max_val - min_val
        fallback = torch.where(min_val != 0, min_val.abs(), torch.ones_like(min_val))
        scale = torch.where(span > 0, span / qmax, fallback)
        zero_point = torch.round(-min_val / scale)
        return QParams(alpha * scale, zero_point, qmin, qmax, axis)
    if scheme == "tensorrt":
        qmin, qmax = integer_range(bits, symmetric=True)
        amax = torch.maximum(min_val.abs(), max_val.abs())
        scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
        return QParams(
            alpha * scale, torch.zeros_like(scale), qmin, qmax, axis, fp16=bits == 16
        )
    raise ValueError(
        f"unknown quantization scheme {scheme!r}; expected one of {SCHEMES}"
    )


def _broadcast(values: Tensor, axis: int | None, ndim: int) -> Tensor:
    if axis is None or values.ndim == 0:
        return values
    shape = [1] * ndim
    shape[axis] = -1
    return values.view(shape)


def fake_quantize(x: Tensor, qp: QParams) -> Tensor:
    """Quantize and dequantize ``x`` with round-half-to-even, as ONNX QuantizeLinear does.

    Every step after the division runs in place on one new tensor, and the clamp has
    scalar bounds: a clamp with per-channel tensor bounds is several times slower on
    CPU than adding and subtracting the zero-point around a scalar clamp.
    """
    if qp.fp16:
        return x.to(torch.float16).to(x.dtype)
    q = torch.div(x, _broadcast(qp.scale, qp.axis, x.ndim)).round_()
    if qp.symmetric:
        return q.clamp_(qp.qmin, qp.qmax).mul_(_broadcast(qp.scale, qp.axis, x.ndim))
    zero_point = _broadcast(qp.zero_point, qp.axis, x.ndim)
    q.add_(zero_point).clamp_(qp.qmin, qp.qmax).sub_(zero_point)
    return q.mul_(_broadcast(qp.scale, qp.axis, x.ndim))
