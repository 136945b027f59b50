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

    What `fake_quantize` needs beyond that is derived here, once, where the
    quantizer is built on its device, so that no call syncs a GPU to ask:
    ``bounds`` (per tensor: the grid shifted by the zero-point, which turns
    ``clamp(q + Z, qmin, qmax) - Z`` into one clamp) and ``fused_zero_point``
    (the int32 zero-point torch's fused kernel reads, set where that kernel runs).
    """

    scale: Tensor
    zero_point: Tensor
    qmin: int
    qmax: int
    axis: int | None
    fp16: bool = False
    symmetric: bool = field(init=False, repr=False, compare=False)
    bounds: tuple[int, int] | None = field(init=False, repr=False, compare=False)
    fused_zero_point: Tensor | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bounds = fused_zero_point = None
        if self.scale.ndim == 0:
            zero_point = int(self.zero_point.item())
            symmetric = zero_point == 0
            bounds = (self.qmin - zero_point, self.qmax - zero_point)
            fused = self.scale.dtype == torch.float32 and not self.fp16
            if fused and _fused_kernel_runs_on(self.scale.device):
                fused_zero_point = self.zero_point.to(torch.int32)
        else:
            symmetric = not bool(self.zero_point.any())
        object.__setattr__(self, "symmetric", symmetric)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "fused_zero_point", fused_zero_point)


def _fused_kernel_runs_on(device: torch.device) -> bool:
    """Where torch's one-pass ``fake_quantize_per_tensor_affine`` is the faster path.

    Not on CPU: its CPU kernel is a scalar loop over ``std::nearbyint``, 9 to 13 times
    slower than the four vectorised passes on a quiet machine (docs/method.md, "Fake
    quantization kernels"). On CUDA one launch replaces four.
    """
    return device.type == "cuda"


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


def broadcast(values: Tensor, axis: int | None, ndim: int) -> Tensor:
    """Per-channel ``values`` shaped to broadcast along ``axis`` of an ``ndim`` tensor."""
    if axis is None or values.ndim == 0:
        return values
    shape = [1] * ndim
    shape[axis] = -1
    return values.view(shape)


def fake_quantize(x: Tensor, qp: QParams) -> Tensor:
    """Quantize and dequantize ``x`` with round-half-to-even, as ONNX QuantizeLinear does.

    Per tensor on CUDA this is torch's fused kernel (one pass; it multiplies by
    ``1 / S`` where the formula divides, so it may round a value lying within an ulp
    of a half-step the other way: docs/method.md gives the measured rate). Everywhere
    else it is the formula itself in four passes, every one after the division in
    place on one new tensor, with scalar clamp bounds where the zero-point is one
    number: a clamp with per-channel tensor bounds is several times slower on CPU
    than adding and subtracting the zero-point around a scalar clamp.
    """
    if qp.fp16:
        return x.to(torch.float16).to(x.dtype)
    if qp.fused_zero_point is not None and x.dtype == torch.float32:
        return torch.fake_quantize_per_tensor_affine(
            x, qp.scale, qp.fused_zero_point, qp.qmin, qp.qmax
        )
    scale = broadcast(qp.scale, qp.axis, x.ndim)
    q = torch.div(x, scale).round_()
    if qp.bounds is not None:
        return q.clamp_(*qp.bounds).mul_(scale)
    if qp.symmetric:
        return q.clamp_(qp.qmin, qp.qmax).mul_(scale)
    zero_point = broadcast(qp.zero_point, qp.axis, x.ndim)
    q.add_(zero_point).clamp_(qp.qmin, qp.qmax).sub_(zero_point)
    return q.mul_(scale)
