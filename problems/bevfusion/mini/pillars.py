"""LiDAR to BEV without learned layers: mean point features per voxel, then a dense scatter.

Stands in for BEVFusion's HardSimpleVFE + SparseEncoder (which the thesis does not
quantize). Voxels are BEV cells x height bins x sweeps; each holds the mean of
(x, y, z offsets inside the voxel, intensity) and log(1 + point count).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from problems.bevfusion.mini.registry import MODELS

POINT_FEATURES = 5


@MODELS.register_module()
class MeanVoxelEncoder(nn.Module):
    """Points -> (voxel features V x 5, coords V x 5 = batch, sweep, z, x, y)."""

    def __init__(
        self,
        point_cloud_range: tuple[float, ...],
        voxel_size: tuple[float, float, float],
        sweep_dts: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.register_buffer(
            "low", torch.tensor(point_cloud_range[:3]), persistent=False
        )
        self.register_buffer("size", torch.tensor(voxel_size), persistent=False)
        self.grid = [
            round((point_cloud_range[i + 3] - point_cloud_range[i]) / voxel_size[i])
            for i in range(3)
        ]
        self.register_buffer("sweep_dts", torch.tensor(sweep_dts), persistent=False)

    def forward(self, points: list[Tensor]) -> tuple[Tensor, Tensor]:
        nx, ny, nz = self.grid
        sweeps = len(self.sweep_dts)
        keys, feats = [], []
        for b, cloud in enumerate(points):
            cell = (cloud[:, :3] - self.low) / self.size
            index = cell.floor().long()
            inside = ((index >= 0) & (index < torch.tensor(self.grid))).all(1)
            sweep = (cloud[:, 4:5] - self.sweep_dts).abs().argmin(1)
            index, sweep = index[inside], sweep[inside]
            keys.append(
                (((b * sweeps + sweep) * nz + index[:, 2]) * nx + index[:, 0]) * ny
                + index[:, 1]
            )
            offsets = cell[inside] - index - 0.5
            ones = torch.ones_like(offsets[:, :1])
            feats.append(torch.cat([offsets, cloud[inside, 3:4], ones], 1))
        keys, feats = torch.cat(keys), torch.cat(feats)
        unique, inverse = torch.unique(keys, return_inverse=True)
        sums = feats.new_zeros(len(unique), POINT_FEATURES).index_add_(
            0, inverse, feats
        )
        count = sums[:, -1:]
        voxel_features = torch.cat([sums[:, :-1] / count, torch.log1p(count)], 1)
        coords = []
        for size in (ny, nx, nz, sweeps):
            coords.append(unique % size)
            unique = unique // size
        coords.append(unique)
        return voxel_features, torch.stack(coords[::-1], 1)


@MODELS.register_module()
class DenseVoxelScatter(nn.Module):
    """Voxels -> B x (sweeps * Z * 5) x X x Y, height and sweep folded into channels."""

    def __init__(self, grid: tuple[int, int, int], sweeps: int) -> None:
        super().__init__()
        self.nx, self.ny, self.nz = grid
        self.sweeps = sweeps
        self.out_channels = sweeps * self.nz * POINT_FEATURES

    def forward(
        self, voxel_features: Tensor, coords: Tensor, batch_size: int
    ) -> Tensor:
        b, s, z, x, y = coords.unbind(1)
        slot = (
            ((b * self.sweeps + s) * self.nz + z) * self.nx * self.ny + x * self.ny + y
        )
        dense = voxel_features.new_zeros(
            batch_size * self.sweeps * self.nz * self.nx * self.ny, POINT_FEATURES
        )
        dense[slot] = voxel_features
        dense = dense.view(
            batch_size, self.sweeps * self.nz, self.nx, self.ny, POINT_FEATURES
        )
        return dense.permute(0, 1, 4, 2, 3).reshape(batch_size, -1, self.nx, self.ny)
