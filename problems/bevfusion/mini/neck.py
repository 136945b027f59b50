"""BEVFusion's GeneralizedLSSFPN: top-down fusion of three backbone maps into two levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from problems.bevfusion.mini.blocks import ConvModule
from problems.bevfusion.mini.registry import MODELS


@MODELS.register_module()
class GeneralizedLSSFPN(nn.Module):
    """Level i concatenates map i with the upsampled level i + 1 (the top map for the last).

    Two lateral (1 x 1) and two output (3 x 3) convs for three inputs, as in BEVFusion.
    """

    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        levels = len(in_channels) - 1
        self.lateral_convs = nn.ModuleList(
            ConvModule(
                in_channels[i]
                + (in_channels[i + 1] if i == levels - 1 else out_channels),
                out_channels,
                1,
            )
            for i in range(levels)
        )
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3) for _ in range(levels)
        )

    def forward(self, inputs: list[Tensor]) -> list[Tensor]:
        top = inputs[-1]
        outs = []
        for i in reversed(range(len(self.lateral_convs))):
            up = F.interpolate(top, size=inputs[i].shape[-2:], mode="bilinear")
            top = self.fpn_convs[i](
                self.lateral_convs[i](torch.cat([inputs[i], up], 1))
            )
            outs.insert(0, top)
        return outs
