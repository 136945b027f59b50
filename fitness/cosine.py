"""The fidelity objective F_cos: how far quantized outputs turn from FP32 ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _samples(outputs: Tensor | Sequence[Tensor]) -> Tensor:
    """One float64 row per sample, whatever the batches' output shapes."""
    batches = [outputs] if isinstance(outputs, Tensor) else outputs
    return torch.cat(
        [b.detach().reshape(b.shape[0], -1).to(torch.float64) for b in batches]
    )


def f_cos(
    reference_outputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor]
) -> float:
    """Mean over samples of ``1 - cos(reference, output)``, each sample flattened.

    Accumulates in float64 so that near-identical outputs do not round to 0 error.
    Two zero vectors count as identical (cos 1), zero against nonzero as
    orthogonal (cos 0).
    """
    ref, out = _samples(reference_outputs), _samples(outputs)
    if ref.shape != out.shape:
        raise ValueError(
            f"output shapes differ: {tuple(ref.shape)} vs {tuple(out.shape)}"
        )
    ref_norm, out_norm = ref.norm(dim=1), out.norm(dim=1)
    both_zero = (ref_norm == 0) & (out_norm == 0)
    denominator = ref_norm * out_norm
    cos = (ref * out).sum(dim=1) / torch.where(denominator == 0, 1.0, denominator)
    cos = torch.where(both_zero, 1.0, cos)
    return float((1.0 - cos).mean())
