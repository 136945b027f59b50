"""Synthetic scenes as an mmengine dataset: mmdet3d-style ``inputs`` + ``data_samples``."""

from __future__ import annotations

import torch
from mmengine.dataset import pseudo_collate
from mmengine.structures import BaseDataElement, InstanceData
from torch.utils.data import Dataset

from problems.bevfusion.mini.registry import DATASETS
from problems.bevfusion.mini.scenes import Scene, make_scene

SPLITS = {"train": 0, "calibration": 1, "fitness": 2, "test": 3}
"""Each split is its own seed stream, so no scene is in two splits."""


def pack_scene(scene: Scene) -> dict:
    """One scene as mmdet3d packs a sample: tensors in ``inputs``, the rest in a data sample."""
    sample = BaseDataElement(
        metainfo={"cam2img": scene.cam2img, "lidar2cam": scene.lidar2cam},
        gt_instances_3d=InstanceData(
            bboxes_3d=torch.from_numpy(scene.gt_bboxes_3d),
            labels_3d=torch.from_numpy(scene.gt_labels_3d),
        ),
    )
    return {
        "inputs": {
            "imgs": torch.from_numpy(scene.images),
            "points": torch.from_numpy(scene.points),
        },
        "data_samples": sample,
    }


@DATASETS.register_module()
class SyntheticScenes(Dataset):
    """``num_scenes`` scenes of a split; scene i is the same on every machine."""

    def __init__(self, split: str, num_scenes: int, seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: use one of {sorted(SPLITS)}")
        self.stream = seed * len(SPLITS) + SPLITS[split]
        self.num_scenes = num_scenes

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_scenes:
            raise IndexError(index)
        return pack_scene(make_scene(self.stream, index))


def batches(dataset: Dataset, batch_size: int, count: int) -> list[dict]:
    """The first ``count`` batches, collated as mmengine's ``pseudo_collate`` does."""
    return [
        pseudo_collate([dataset[i] for i in range(start, start + batch_size)])
        for start in range(0, batch_size * count, batch_size)
    ]
