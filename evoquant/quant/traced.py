"""Input quantizers held as tensors only, so that one compiled graph serves every genome.

``torch.compile`` guards on the Python values a traced function reads: with the
eager quantizers' integer clamp bounds, every new bit config of a layer would
recompile the model. Here a quantizer is tensors (scale, shifted bounds, an FP16 flag
and a pass-through flag), and a genome swaps which tensors a layer holds, so the
graph is compiled once (twice: the first genome's weights no longer require grad) and
inductor fuses the quantize-dequantize into the kernels around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from evoquant.quant.fakequant import QParams, broadcast


@dataclass(frozen=True)
class TensorQuantizer:
    """``QParams`` as tensors: ``round(x / S)`` clamped to ``[qmin - Z, qmax - Z]``, times S.

    The shifted bounds give the same integers as ``clamp(q + Z, qmin, qmax) - Z`` for
    every integer ``q``, so the result equals ``fake_quantize`` bit for bit wherever the
    compiled kernel computes ``x / S`` as a division, as inductor's do.
    """

    scale: Tensor
    low: Tensor
    high: Tensor
    fp16: Tensor
    passthrough: Tensor
    axis: int | None

    @classmethod
    def of(cls, qp: QParams) -> TensorQuantizer:
        return cls(
            qp.scale,
            (qp.qmin - qp.zero_point).to(qp.scale.dtype),
            (qp.qmax - qp.zero_point).to(qp.scale.dtype),
            torch.tensor(qp.fp16, device=qp.scale.device),
            torch.tensor(False, device=qp.scale.device),
            qp.axis,
        )

    def off(self) -> TensorQuantizer:
        """The same shapes passing the input through: FP32 compiles to the same graph."""
        return TensorQuantizer(
            self.scale,
            self.low,
            self.high,
            self.fp16,
            torch.ones_like(self.passthrough),
            self.axis,
        )

    def __call__(self, x: Tensor) -> Tensor:
        scale = broadcast(self.scale, self.axis, x.ndim)
        low = broadcast(self.low, self.axis, x.ndim)
        high = broadcast(self.high, self.axis, x.ndim)
        q = (torch.clamp(torch.round(x / scale), low, high) * scale).to(x.dtype)
        q = torch.where(self.fp16, x.to(torch.float16).to(x.dtype), q)
        return torch.where(self.passthrough, x, q)
