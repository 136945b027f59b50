# mmengine config of the mini BEVFusion (read with mmengine.Config.fromfile; plain data).
# Sizes are chosen so that a batch of 4 scenes runs well under a second on one core.
point_cloud_range = [-25.6, -25.6, -2.0, 25.6, 25.6, 2.0]
image_size = [32, 96]

model = {
    "type": "BEVFusionMini",
    "data_preprocessor": {"type": "MiniDataPreprocessor", "mean": 0.5, "std": 0.25},
    # OpenMMLab's initialisations (mmcv ConvModule / mmdet3d SECOND: Kaiming normal,
    # fan_out; mmdet Swin: truncated normal std 0.02), not PyTorch's uniform defaults:
    # the bell-shaped weights they train into are what low-bit quantization meets in
    # real networks.
    "init_cfg": {"type": "Kaiming", "layer": "Conv2d"},
    "img_backbone": {
        "type": "MiniSwin",
        "embed_dims": 16,
        "depths": [2, 2, 6, 2],
        "num_heads": [1, 2, 4, 8],
        "window_size": 4,
        "mlp_ratio": 2,
        "patch_size": 4,
        "out_indices": [1, 2, 3],
        "init_cfg": [
            {"type": "TruncNormal", "layer": "Linear", "std": 0.02, "bias": 0.0},
            {"type": "Constant", "layer": "LayerNorm", "val": 1.0, "bias": 0.0},
        ],
    },
    "img_neck": {
        "type": "GeneralizedLSSFPN",
        "in_channels": [32, 64, 128],
        "out_channels": 32,
    },
    "view_transform": {
        "type": "DepthLSSTransform",
        "in_channels": 32,
        "out_channels": 16,
        "image_size": image_size,
        "feature_size": [4, 12],
        "xbound": [-25.6, 25.6, 0.8],
        "ybound": [-25.6, 25.6, 0.8],
        "dbound": [1.0, 35.0, 1.0],
    },
    "pts_voxel_encoder": {
        "type": "MeanVoxelEncoder",
        "point_cloud_range": point_cloud_range,
        "voxel_size": [1.6, 1.6, 1.0],
        "sweep_dts": [0.0, 0.5],
    },
    "pts_middle_encoder": {
        "type": "DenseVoxelScatter",
        "grid": [32, 32, 4],
        "sweeps": 2,
    },
    "fusion_layer": {"type": "ConvFuser", "in_channels": [16, 40], "out_channels": 48},
    "pts_backbone": {
        "type": "SECOND",
        "in_channels": 48,
        "out_channels": [32, 64],
        "layer_nums": [5, 5],
        "layer_strides": [1, 2],
    },
    "pts_neck": {
        "type": "SECONDFPN",
        "in_channels": [32, 64],
        "out_channels": [32, 32],
        "upsample_strides": [1, 2],
    },
    "bbox_head": {
        "type": "TransFusionHead",
        "in_channels": 64,
        "hidden_channels": 32,
        "num_classes": 4,
        "num_proposals": 24,
        "num_heads": 4,
        "ffn_channels": 64,
        "grid": [32, 32],
        "bev_min": [-25.6, -25.6],
        "cell_size": 1.6,
    },
}

train_dataset = {"type": "SyntheticScenes", "split": "train", "num_scenes": 1500}
test_dataset = {"type": "SyntheticScenes", "split": "test", "num_scenes": 64}
