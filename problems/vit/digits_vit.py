"""Built-in offline transformer problem: a small vision transformer on the 8x8 digits.

The attention model next to the digits CNN: the same data, splits and batches
(``problems.cnn.digits``), a network written the way real transformers are, with
plain ``nn.Module``s whose attention calls
``torch.nn.functional.scaled_dot_product_attention`` and has no quantization layer of
its own, so the search finds its q·kᵀ and attn·v products the way it finds them in a
user's model. The weights ship with the package (``weights/digits_vit.safetensors``,
trained once by ``python -m problems.vit.train_digits_vit``; settings, seed, loss and
accuracy in ``weights/digits_vit.json``) and are never retrained at run time.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from problems.cnn.digits import digits_factory
from problems.weights import load_trained

WEIGHTS = Path(__file__).parent / "weights" / "digits_vit.safetensors"
"""The shipped FP32 weights (seed 0)."""

IMAGE_SIZE = 8
PATCH = 2
DIM = 64
DEPTH = 3
HEADS = 4
MLP_DIM = 128


class SelfAttention(nn.Module):
    """Multi-head self-attention: one qkv projection, fused attention, an output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DigitsViT(nn.Module):
    """2x2 patches (16 tokens) embedded to 64 by a strided convolution, a class token
    and learned positions, three blocks of 4-head attention, a linear classifier.

    1 Conv2d + 13 Linear layers and 6 attention products (q·kᵀ, attn·v per block),
    99,200 weights: trains in a minute or two on one CPU thread.
    """

    def __init__(
        self,
        dim: int = DIM,
        depth: int = DEPTH,
        heads: int = HEADS,
        mlp_dim: int = MLP_DIM,
    ) -> None:
        super().__init__()
        tokens = (IMAGE_SIZE // PATCH) ** 2
        self.patch_embed = nn.Conv2d(1, dim, PATCH, PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))


def load_digits_vit(weights: str | Path = WEIGHTS) -> DigitsViT:
    """The trained FP32 network in eval mode; a missing or corrupt file is a UserError."""
    return load_trained(
        DigitsViT(), weights, "digits_vit", "problems.vit.train_digits_vit"
    )


digits_vit_problem = digits_factory(
    "digits_vit", load_digits_vit, WEIGHTS, "problems.vit.train_digits_vit", __name__
)
"""The digits problem's batches and top-1 (``problems.cnn.digits``) on the ViT."""
