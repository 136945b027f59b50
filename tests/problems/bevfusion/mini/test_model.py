import torch
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS

from problems.bevfusion.mini.checkpoint import CONFIG, initialised_model
from problems.bevfusion.mini.geometry import camera_rig
from problems.bevfusion.mini.head import HEATMAP_PRIOR_BIAS
from problems.bevfusion.mini.model import BEVFusionMini
from problems.bevfusion.mini.pillars import DenseVoxelScatter, MeanVoxelEncoder
from problems.bevfusion.mini.registry import DATASETS, MODELS
from problems.bevfusion.mini.view_transform import depth_images


def test_model_and_dataset_build_from_an_mmengine_config():
    config = Config.fromfile(str(CONFIG))
    assert isinstance(MODELS.build(config.model), BEVFusionMini)
    assert len(DATASETS.build(config.test_dataset)) == 64
    assert MODELS.parent is ROOT_MODELS


def _kurtosis(weight: torch.Tensor) -> float:
    centred = weight.flatten() - weight.mean()
    return float((centred**4).mean() / (centred**2).mean() ** 2)


def test_init_weights_uses_openmmlab_normal_inits_and_keeps_heatmap_priors():
    torch.manual_seed(0)
    model = initialised_model()
    linear = model.img_backbone.stages[2].blocks[0].ffn.layers[1]
    assert abs(linear.weight.std().item() - 0.02) < 0.002  # mmdet Swin: trunc normal
    assert not linear.bias.any()
    conv = model.pts_backbone.blocks[1][3]
    fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
    kaiming_std = (2 / fan_out) ** 0.5  # mmcv Kaiming: normal, fan_out, ReLU gain
    assert abs(conv.weight.std().item() / kaiming_std - 1) < 0.05
    # bell-shaped (normal: 3), not PyTorch's default uniform (1.8)
    assert _kurtosis(linear.weight) > 2.6 and _kurtosis(conv.weight) > 2.6
    head = model.bbox_head
    for bias in (head.heatmap_head[1].bias, head.prediction_heads[0].heatmap[-1].bias):
        assert torch.all(bias == HEATMAP_PRIOR_BIAS)


def test_test_step_returns_mmdet3d_style_predictions(untrained_model, test_batch):
    gt_before = [
        s.gt_instances_3d.bboxes_3d.clone() for s in test_batch["data_samples"]
    ]
    with torch.no_grad():
        samples = untrained_model.test_step(test_batch)
    assert len(samples) == 4
    proposals = untrained_model.bbox_head.num_proposals
    for sample, before in zip(samples, test_batch["data_samples"]):
        pred = sample.pred_instances_3d
        assert pred.bboxes_3d.shape == (proposals, 9)
        assert pred.scores_3d.shape == pred.labels_3d.shape == (proposals,)
        assert ((pred.scores_3d >= 0) & (pred.scores_3d <= 1)).all()
        assert "pred_instances_3d" not in before  # the stored batch is left untouched
    for sample, gt in zip(test_batch["data_samples"], gt_before):
        assert torch.equal(sample.gt_instances_3d.bboxes_3d, gt)


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


def test_voxels_average_points_and_scatter_densely():
    encoder = MeanVoxelEncoder(
        [-25.6, -25.6, -2.0, 25.6, 25.6, 2.0], [1.6, 1.6, 1.0], [0.0, 0.5]
    )
    points = torch.tensor(
        [
            [0.4, 0.4, -1.5, 0.2, 0.0],
            [1.2, 1.2, -1.5, 0.6, 0.0],
            [0.4, 0.4, -1.5, 1.0, 0.5],
        ]
    )
    features, coords = encoder([points])
    assert coords.tolist() == [[0, 0, 0, 16, 16], [0, 1, 0, 16, 16]]
    assert torch.allclose(
        features[0], torch.tensor([0.0, 0.0, 0.0, 0.4, 1.0986]), atol=1e-4
    )
    dense = DenseVoxelScatter((32, 32, 4), 2)(features, coords, 1)
    assert dense.shape == (1, 40, 32, 32)
    assert dense[0, :, 16, 16].count_nonzero() == 6  # 2 + 4 non-zero features
