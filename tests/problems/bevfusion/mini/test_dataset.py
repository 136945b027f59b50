"""SyntheticScenes: mmdet3d-style samples of the synthetic scene streams."""

import pytest

from problems.bevfusion.mini.dataset import SyntheticScenes
from problems.bevfusion.mini.geometry import IMAGE_SIZE


def test_dataset_packs_mmdet3d_style_samples():
    dataset = SyntheticScenes("fitness", 2)
    sample = dataset[1]
    assert sample["inputs"]["imgs"].shape == (4, 3, *IMAGE_SIZE)
    assert sample["inputs"]["points"].shape[1] == 5
    gt = sample["data_samples"].gt_instances_3d
    assert gt.bboxes_3d.shape[1] == 9 and len(gt.labels_3d) == len(gt.bboxes_3d)
    assert sample["data_samples"].cam2img.shape == (4, 4, 4)
    with pytest.raises(IndexError):
        dataset[2]
    with pytest.raises(ValueError, match="unknown split"):
        SyntheticScenes("validation", 1)
