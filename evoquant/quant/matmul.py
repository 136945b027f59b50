"""A named, hookable ``torch.matmul`` for attention products (q·kᵀ, attn·v)."""

import torch
from torch import Tensor, nn


class QuantMatMul(nn.Module):
    """Drop-in for ``torch.matmul(a, b)``; evoquant fake-quantizes both operands.

    Models write ``self.q_k_matmul = QuantMatMul()`` and call
    ``self.q_k_matmul(q, k.transpose(-2, -1))`` so the product has a layer name
    in the genome. It has no weights, so its gene costs no bits.
    """

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.matmul(a, b)
