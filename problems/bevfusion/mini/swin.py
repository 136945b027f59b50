"""Swin Transformer camera backbone with mmdet's module names (``SwinTransformer``).

Layer names match mmdet so the genome matches the thesis: ``patch_embed.projection``,
``stages.i.blocks.j.attn.w_msa.{qkv, proj, q_k_matmul, attn_v_matmul}``,
``stages.i.blocks.j.ffn.layers.{0.0, 1}``, ``stages.i.downsample.reduction``.
Windows shrink to the feature map when it is smaller than the window, as in the
original Swin, instead of padding a 2 x 6 map to 4 x 8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from evoquant.quant.matmul import QuantMatMul
from problems.bevfusion.mini.registry import MODELS


class PatchEmbed(nn.Module):
    def __init__(self, in_channels: int, dims: int, patch: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, dims, patch, patch)
        self.norm = nn.LayerNorm(dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.projection(x).permute(0, 2, 3, 1))


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows, with relative position bias."""

    def __init__(self, dims: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dims // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.window = window
        self.qkv = nn.Linear(dims, 3 * dims)
        self.proj = nn.Linear(dims, dims)
        self.q_k_matmul = QuantMatMul()
        self.attn_v_matmul = QuantMatMul()

    def _bias(self, wh: int, ww: int) -> Tensor:
        coords = torch.stack(
            torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
        ).flatten(1)
        relative = coords[:, :, None] - coords[:, None, :] + self.window - 1
        index = relative[0] * (2 * self.window - 1) + relative[1]
        return self.relative_position_bias_table[index].permute(2, 0, 1)

    def forward(
        self, x: Tensor, window: tuple[int, int], mask: Tensor | None
    ) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = self.q_k_matmul(q * self.scale, k.transpose(-2, -1))
        attn = attn + self._bias(*window)
        if mask is not None:
            attn = attn.view(-1, mask.shape[0], self.heads, n, n) + mask[:, None]
            attn = attn.view(-1, self.heads, n, n)
        out = self.attn_v_matmul(attn.softmax(-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class ShiftWindowMSA(nn.Module):
    """Partition into (optionally shifted) windows around ``w_msa``."""

    def __init__(self, dims: int, heads: int, window: int, shift: bool) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.w_msa = WindowMSA(dims, heads, window)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        wh, ww = min(self.window, h), min(self.window, w)
        sh = wh // 2 if self.shift and h > self.window else 0
        sw = ww // 2 if self.shift and w > self.window else 0
        ph, pw = -h % wh, -w % ww
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        mask = None
        if sh or sw:
            x = torch.roll(x, (-sh, -sw), (1, 2))
            mask = _shift_mask(hp, wp, wh, ww, sh, sw, x.device)
        windows = (
            x.view(b, hp // wh, wh, wp // ww, ww, c)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(-1, wh * ww, c)
        )
        out = self.w_msa(windows, (wh, ww), mask)
        out = (
            out.view(b, hp // wh, wp // ww, wh, ww, c)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(b, hp, wp, c)
        )
        if sh or sw:
            out = torch.roll(out, (sh, sw), (1, 2))
        return out[:, :h, :w].contiguous()


def _shift_mask(
    h: int, w: int, wh: int, ww: int, sh: int, sw: int, device: torch.device
) -> Tensor:
    """-100 between tokens that the cyclic shift brought into one window from afar."""
    regions = torch.zeros(h, w, device=device)
    label = 0
    for rows in (slice(0, -wh), slice(-wh, -sh or None), slice(-sh or h, None)):
        for cols in (slice(0, -ww), slice(-ww, -sw or None), slice(-sw or w, None)):
            regions[rows, cols] = label
            label += 1
    windows = (
        regions.view(h // wh, wh, w // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    )
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.where(diff != 0, -100.0, 0.0)


class FFN(nn.Module):
    """mmcv's FFN layout: ``layers = [[Linear, GELU, Dropout], Linear, Dropout]``."""

    def __init__(self, dims: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(dims, hidden), nn.GELU(), nn.Dropout(0.0)),
            nn.Linear(hidden, dims),
            nn.Dropout(0.0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class SwinBlock(nn.Module):
    def __init__(
        self, dims: int, heads: int, window: int, shift: bool, mlp_ratio: int
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dims)
        self.attn = ShiftWindowMSA(dims, heads, window, shift)
        self.norm2 = nn.LayerNorm(dims)
        self.ffn = FFN(dims, mlp_ratio * dims)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PatchMerging(nn.Module):
    """2 x 2 neighbourhoods -> one token of twice the width (odd sizes padded)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dims)
        self.reduction = nn.Linear(4 * dims, 2 * dims, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1
        )
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(
        self,
        dims: int,
        depth: int,
        heads: int,
        window: int,
        mlp_ratio: int,
        downsample: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dims, heads, window, i % 2 == 1, mlp_ratio) for i in range(depth)
        )
        self.downsample = PatchMerging(dims) if downsample else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(this stage's output, the next stage's input)."""
        for block in self.blocks:
            x = block(x)
        return x, x if self.downsample is None else self.downsample(x)


@MODELS.register_module()
class MiniSwin(BaseModule):
    """Swin-T's depths [2, 2, 6, 2] at a CPU-sized width; returns ``out_indices`` maps.

    A ``BaseModule`` so that the config's ``init_cfg`` (mmdet's truncated-normal Linear
    init) applies to it alone.
    """

    def __init__(
        self,
        embed_dims: int = 16,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (1, 2, 4, 8),
        window_size: int = 4,
        mlp_ratio: int = 2,
        patch_size: int = 4,
        out_indices: tuple[int, ...] = (1, 2, 3),
        init_cfg: dict | list | None = None,
    ) -> None:
        super().__init__(init_cfg)
        self.patch_embed = PatchEmbed(3, embed_dims, patch_size)
        dims = [embed_dims * 2**i for i in range(len(depths))]
        self.stages = nn.ModuleList(
            SwinStage(d, depth, h, window_size, mlp_ratio, i < len(depths) - 1)
            for i, (d, depth, h) in enumerate(zip(dims, depths, num_heads))
        )
        self.out_indices = tuple(out_indices)
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(dims[i]))
        self.out_channels = [dims[i] for i in self.out_indices]

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.patch_embed(images)
        outs = []
        for i, stage in enumerate(self.stages):
            out, x = stage(x)
            if i in self.out_indices:
                outs.append(
                    getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2).contiguous()
                )
        return outs
