"""Input quantizers held as tensors only, so that one compiled graph serves every genome.

``torch.compile`` guards on the Python values a traced function reads: with the
eager quantizers' integer clamp bounds, every new bit config of a layer would
recompile the model. Here a quantizer is tensors (scale, shifted bounds, an FP16 flag
and a pass-through flag), and a genome swaps which tensors a layer holds, so the
graph is compiled once (twice: the first genome's weights no longer require grad) and
inductor fuses the quantize-dequantize into the kernels around it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def compile_for_this_cpu(fn: Callable) -> Callable:
    """``torch.compile(fn)``, its kernels cached apart for each CPU capability.

    Inductor's on-disk cache ignores ``ATEN_CPU_CAPABILITY``: measured on torch 2.14,
    an AVX2 process that loaded the kernels an AVX-512 one had cached scored garbage,
    and the other way round corrupted the heap. Each capability gets its own folder
    under the cache (``TORCHINDUCTOR_CACHE_DIR`` or inductor's default).
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    folder = f"cpu_{torch.backends.cpu.get_cpu_capability().lower()}"
    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir()
    if os.path.basename(root) != folder:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(root, folder)
    return torch.compile(fn)
