"""The fidelity objective F_cos: how far quantized outputs turn from FP32 ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _batches(outputs: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """One float64 row per sample of each batch (batches may differ in sample shape:
    token sequences of other lengths)."""
    batches = [outputs] if isinstance(outputs, Tensor) else outputs
    return [b.detach().reshape(b.shape[0], -1).to(torch.float64) for b in batches]


def _cosines(ref: Tensor, out: Tensor) -> Tensor:
    """Per-sample cosine; two zero vectors count as identical, zero against nonzero as
    orthogonal."""
    if ref.shape != out.shape:
        raise ValueError(
            f"output shapes differ: {tuple(ref.shape)} vs {tuple(out.shape)}"
        )
    ref_norm, out_norm = ref.norm(dim=1), out.norm(dim=1)
    denominator = ref_norm * out_norm
    cos = (ref * out).sum(dim=1) / torch.where(denominator == 0, 1.0, denominator)
    return torch.where((ref_norm == 0) & (out_norm == 0), 1.0, cos)


def f_cos(
    reference_outputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor]
) -> float:
    """Mean over samples of ``1 - cos(reference, output)``, each sample flattened.

    Accumulates in float64 so that near-identical outputs do not round to 0 error.
    Batches are compared pairwise, so each may have its own sample shape.
    """
    refs, outs = _batches(reference_outputs), _batches(outputs)
    if len(refs) != len(outs):
        raise ValueError(f"{len(refs)} reference batches but {len(outs)} outputs")
    cos = torch.cat([_cosines(r, o) for r, o in zip(refs, outs)])
    return float((1.0 - cos).mean())
