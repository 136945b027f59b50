"""The camera branch's view transform: depth images, BEV pooling, frustum geometry."""

import torch

from problems.bevfusion.mini.geometry import camera_rig
from problems.bevfusion.mini.view_transform import depth_images


def test_depth_image_projects_a_point_in_front_of_camera_zero():
    cam2img, lidar2cam = (torch.tensor(m, dtype=torch.float32) for m in camera_rig())
    point = torch.tensor([[10.5, 0.0, -0.2, 0.5, 0.0]])  # 10 m ahead of camera 0
    depth = depth_images([point], (cam2img @ lidar2cam)[None], (32, 96))
    assert depth.shape == (1, 4, 1, 32, 96)
    hits = depth[0, :, 0].nonzero().tolist()
    assert hits == [[0, 16, 48]] and depth[0, 0, 0, 16, 48] == torch.tensor(10.0)


def test_bev_pool_sums_features_into_the_right_cell(untrained_model):
    transform = untrained_model.view_transform
    geometry = torch.tensor([[1.0, 2.0, 0.0], [1.1, 2.1, 0.0], [-30.0, 0.0, 0.0]])
    features = torch.tensor([[1.0], [2.0], [5.0]])
    bev = transform.bev_pool(geometry.view(1, 3, 3), features.view(1, 3, 1))
    cell_x, cell_y = int((1.0 + 25.6) / 0.8), int((2.0 + 25.6) / 0.8)
    assert bev[0, 0, cell_x, cell_y] == 3.0 and bev.sum() == 3.0


def test_view_transform_geometry_puts_camera_zero_ahead(untrained_model):
    cam2img, lidar2cam = (
        torch.tensor(m, dtype=torch.float32)[None] for m in camera_rig()
    )
    xyz = untrained_model.view_transform.geometry(cam2img, lidar2cam)
    ahead = xyz[0, 0, :, :, :, 0]
    assert (ahead > 0).all() and (xyz[0, 2, :, :, :, 0] < 0).all()
