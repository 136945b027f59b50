"""The LiDAR branch's voxelisation: mean voxel features and their dense scatter."""

import torch

from problems.bevfusion.mini.pillars import DenseVoxelScatter, MeanVoxelEncoder


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
