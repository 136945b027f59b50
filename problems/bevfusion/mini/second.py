"""The BEV decoder after fusion: ConvFuser, SECOND backbone and SECONDFPN neck.

Convs sit at Sequential indices 0, 3, 6, ... (Conv, BN, ReLU triples) as in mmdet3d,
so the genome names ``pts_backbone.blocks.0.0`` ... ``pts_neck.deblocks.0.0``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from problems.bevfusion.mini.blocks import conv_bn_relu
from problems.bevfusion.mini.registry import MODELS


@MODELS.register_module()
class ConvFuser(nn.Sequential):
    """Concatenate camera and LiDAR BEV maps, then one 3 x 3 Conv-BN-ReLU."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__(*conv_bn_relu(sum(in_channels), out_channels, 3))

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return super().forward(torch.cat(inputs, 1))


@MODELS.register_module()
class SECOND(nn.Module):
    """Blocks of (1 strided + ``layer_nums``) 3 x 3 convs; returns every block's map."""

    def __init__(
        self,
        in_channels: int,
        out_channels: tuple[int, ...],
        layer_nums: tuple[int, ...],
        layer_strides: tuple[int, ...],
    ) -> None:
        super().__init__()
        inputs = [in_channels, *out_channels[:-1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                *conv_bn_relu(c_in, c_out, 3, stride),
                *[m for _ in range(n) for m in conv_bn_relu(c_out, c_out, 3)],
            )
            for c_in, c_out, n, stride in zip(
                inputs, out_channels, layer_nums, layer_strides
            )
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


@MODELS.register_module()
class SECONDFPN(nn.Module):
    """Bring every block to the first block's resolution and concatenate.

    A stride-1 level is a 1 x 1 Conv2d (quantized); upsampling levels are
    ConvTranspose2d, which the thesis leaves in FP32.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: tuple[int, ...],
        upsample_strides: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.deblocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, bias=False)
                if stride == 1
                else nn.ConvTranspose2d(c_in, c_out, stride, stride, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )
            for c_in, c_out, stride in zip(in_channels, out_channels, upsample_strides)
        )

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return torch.cat([deblock(x) for deblock, x in zip(self.deblocks, inputs)], 1)
