"""BEVFusion's DepthLSSTransform: camera features lifted along depth bins into the BEV.

LiDAR points projected into each camera give a sparse depth image (``dtransform``)
that guides the per-pixel depth distribution (``depthnet``); features weighted by
it are splatted into a BEV grid by a pure-torch scatter-add (BEVFusion's CUDA
``bev_pool`` does the same sum), then ``downsample`` halves the grid.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from problems.bevfusion.mini.blocks import conv_bn_relu
from problems.bevfusion.mini.registry import MODELS


def depth_images(
    points: list[Tensor], lidar2img: Tensor, image_size: tuple[int, int]
) -> Tensor:
    """B x N x 1 x H x W: distance of the nearest projected LiDAR point, 0 where none."""
    b, n = lidar2img.shape[:2]
    height, width = image_size
    depth = torch.full((b, n, height * width), float("inf"), device=lidar2img.device)
    for i, cloud in enumerate(points):
        xyz1 = torch.cat([cloud[:, :3], torch.ones_like(cloud[:, :1])], 1)
        cam = torch.einsum("nij,pj->npi", lidar2img[i], xyz1)
        z = cam[..., 2]
        u = (cam[..., 0] / z.clamp(min=1e-3)).floor().long()
        v = (cam[..., 1] / z.clamp(min=1e-3)).floor().long()
        valid = (z > 0.1) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        camera = torch.arange(n, device=z.device)[:, None].expand_as(z)
        index = camera[valid] * height * width + v[valid] * width + u[valid]
        depth[i].view(-1).scatter_reduce_(0, index, z[valid], "amin")
    depth = torch.where(depth.isinf(), 0.0, depth)
    return depth.view(b, n, 1, height, width)


@MODELS.register_module()
class DepthLSSTransform(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_size: tuple[int, int],
        feature_size: tuple[int, int],
        xbound: tuple[float, float, float],
        ybound: tuple[float, float, float],
        dbound: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.image_size = tuple(image_size)
        self.xbound, self.ybound = tuple(xbound), tuple(ybound)
        self.nx = round((xbound[1] - xbound[0]) / xbound[2])
        self.ny = round((ybound[1] - ybound[0]) / ybound[2])
        self.register_buffer(
            "frustum", _frustum(image_size, feature_size, dbound), persistent=False
        )
        self.depth_bins = self.frustum.shape[0]
        self.out_channels = out_channels
        self.dtransform = nn.Sequential(
            *conv_bn_relu(1, 8, 1),
            *conv_bn_relu(8, 16, 5, 4),
            *conv_bn_relu(16, 32, 5, 2),
        )
        self.depthnet = nn.Sequential(
            *conv_bn_relu(in_channels + 32, in_channels, 3),
            *conv_bn_relu(in_channels, in_channels, 3),
            nn.Conv2d(in_channels, self.depth_bins + out_channels, 1),
        )
        self.downsample = nn.Sequential(
            *conv_bn_relu(out_channels, out_channels, 3),
            *conv_bn_relu(out_channels, out_channels, 3, 2),
            *conv_bn_relu(out_channels, out_channels, 3),
        )

    def geometry(self, cam2img: Tensor, lidar2cam: Tensor) -> Tensor:
        """LiDAR-frame xyz of every frustum point, B x N x D x fH x fW x 3."""
        uvd = self.frustum
        cam = torch.cat([uvd[..., :2] * uvd[..., 2:], uvd[..., 2:]], -1)
        rays = torch.einsum(
            "bnij,dhwj->bndhwi", torch.linalg.inv(cam2img[..., :3, :3]), cam
        )
        cam2lidar = torch.linalg.inv(lidar2cam)
        xyz = torch.einsum("bnij,bndhwj->bndhwi", cam2lidar[..., :3, :3], rays)
        return xyz + cam2lidar[..., None, None, None, :3, 3]

    def bev_pool(self, geometry: Tensor, features: Tensor) -> Tensor:
        """Sum features into B x C x X x Y cells; points outside the grid are dropped."""
        b, c = features.shape[0], features.shape[-1]
        ix = ((geometry[..., 0] - self.xbound[0]) / self.xbound[2]).floor().long()
        iy = ((geometry[..., 1] - self.ybound[0]) / self.ybound[2]).floor().long()
        batch = torch.arange(b, device=features.device).view(-1, *[1] * (ix.ndim - 1))
        valid = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        index = ((batch * self.nx + ix) * self.ny + iy)[valid]
        bev = features.new_zeros(b * self.nx * self.ny, c)
        bev.index_add_(0, index, features[valid])
        return bev.view(b, self.nx, self.ny, c).permute(0, 3, 1, 2).contiguous()

    def forward(
        self,
        image_features: Tensor,
        points: list[Tensor],
        cam2img: Tensor,
        lidar2cam: Tensor,
    ) -> Tensor:
        b, n, _, fh, fw = image_features.shape
        depth = depth_images(points, cam2img @ lidar2cam, self.image_size)
        d = self.dtransform(depth.flatten(0, 1))
        x = self.depthnet(torch.cat([d, image_features.flatten(0, 1)], 1))
        probs = x[:, : self.depth_bins].softmax(1)
        features = (
            probs[:, None] * x[:, self.depth_bins :, None]
        )  # BN x C x D x fH x fW
        features = features.view(b, n, self.out_channels, self.depth_bins, fh, fw)
        bev = self.bev_pool(
            self.geometry(cam2img, lidar2cam), features.permute(0, 1, 3, 4, 5, 2)
        )
        return self.downsample(bev)


def _frustum(
    image_size: tuple[int, int],
    feature_size: tuple[int, int],
    dbound: tuple[float, float, float],
) -> Tensor:
    """D x fH x fW x 3 of (u, v, depth): feature-cell centres in pixels at each depth bin."""
    (height, width), (fh, fw) = image_size, feature_size
    depths = torch.arange(*dbound) + dbound[2] / 2
    v = (torch.arange(fh) + 0.5) * height / fh
    u = (torch.arange(fw) + 0.5) * width / fw
    d, vv, uu = torch.meshgrid(depths, v, u, indexing="ij")
    return torch.stack([uu, vv, d], -1)
