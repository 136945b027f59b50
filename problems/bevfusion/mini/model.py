"""The mini BEVFusion detector: mmdet3d's ``BEVFusion`` module layout as an mmengine model.

Top-level children are registered in the thesis's genome order (camera branch, fusion,
BEV decoder, head), and ``test_step(data)`` returns one data sample per scene whose
``pred_instances_3d`` holds ``bboxes_3d`` (N x 9), ``scores_3d`` and ``labels_3d``, the
shape of mmdet3d's API, so code written against it also serves a real adapter.
"""

from __future__ import annotations

import torch
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.structures import BaseDataElement, InstanceData
from torch import Tensor

from problems.bevfusion.mini import head as _head  # noqa: F401  (registers modules)
from problems.bevfusion.mini import neck as _neck  # noqa: F401
from problems.bevfusion.mini import pillars as _pillars  # noqa: F401
from problems.bevfusion.mini import second as _second  # noqa: F401
from problems.bevfusion.mini import swin as _swin  # noqa: F401
from problems.bevfusion.mini import view_transform as _vt  # noqa: F401
from problems.bevfusion.mini.loss import detection_loss, forced_queries
from problems.bevfusion.mini.registry import MODELS


@MODELS.register_module()
class MiniDataPreprocessor(BaseDataPreprocessor):
    """Stack each scene's camera images into B x N x 3 x H x W and normalise them."""

    def __init__(self, mean: float = 0.5, std: float = 0.25) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data["inputs"]
        imgs = inputs["imgs"]
        if not isinstance(imgs, Tensor):
            imgs = torch.stack(list(imgs))
        inputs = {
            "imgs": (imgs - self.mean) / self.std,
            "points": list(inputs["points"]),
        }
        return {"inputs": inputs, "data_samples": data["data_samples"]}


@MODELS.register_module()
class BEVFusionMini(BaseModel):
    def __init__(
        self,
        img_backbone: dict,
        img_neck: dict,
        view_transform: dict,
        pts_voxel_encoder: dict,
        pts_middle_encoder: dict,
        fusion_layer: dict,
        pts_backbone: dict,
        pts_neck: dict,
        bbox_head: dict,
        data_preprocessor: dict | None = None,
        init_cfg: dict | list | None = None,
    ) -> None:
        super().__init__(
            data_preprocessor=MODELS.build(
                data_preprocessor or {"type": "MiniDataPreprocessor"}
            ),
            init_cfg=init_cfg,
        )
        self.img_backbone = MODELS.build(img_backbone)
        self.img_neck = MODELS.build(img_neck)
        self.view_transform = MODELS.build(view_transform)
        self.pts_voxel_encoder = MODELS.build(pts_voxel_encoder)
        self.pts_middle_encoder = MODELS.build(pts_middle_encoder)
        self.fusion_layer = MODELS.build(fusion_layer)
        self.pts_backbone = MODELS.build(pts_backbone)
        self.pts_neck = MODELS.build(pts_neck)
        self.bbox_head = MODELS.build(bbox_head)

    def extract_feat(self, inputs: dict, data_samples: list) -> Tensor:
        """Camera BEV and LiDAR BEV, fused and decoded into the head's input map."""
        imgs, points = inputs["imgs"], inputs["points"]
        b, n = imgs.shape[:2]
        features = self.img_neck(self.img_backbone(imgs.flatten(0, 1)))[0]
        cam2img = torch.stack([torch.as_tensor(s.cam2img) for s in data_samples])
        lidar2cam = torch.stack([torch.as_tensor(s.lidar2cam) for s in data_samples])
        img_bev = self.view_transform(
            features.view(b, n, *features.shape[1:]), points, cam2img, lidar2cam
        )
        voxels, coords = self.pts_voxel_encoder(points)
        pts_bev = self.pts_middle_encoder(voxels, coords, b)
        fused = self.fusion_layer([img_bev, pts_bev])
        return self.pts_neck(self.pts_backbone(fused))

    def forward(
        self, inputs: dict, data_samples: list | None = None, mode: str = "tensor"
    ):
        bev = self.extract_feat(inputs, data_samples)
        if mode == "loss":
            boxes = [s.gt_instances_3d.bboxes_3d for s in data_samples]
            labels = [s.gt_instances_3d.labels_3d for s in data_samples]
            forced = forced_queries(boxes, labels, self.bbox_head)
            preds = self.bbox_head(bev, forced)
            return detection_loss(preds, forced, boxes, labels, self.bbox_head)
        preds = self.bbox_head(bev)
        if mode == "tensor":
            return preds
        return self.predict(preds, data_samples)

    def predict(self, preds: dict, data_samples: list) -> list[BaseDataElement]:
        """New data samples (the inputs are left untouched) carrying ``pred_instances_3d``."""
        boxes, scores, labels = self.bbox_head.decode(preds)
        return [
            BaseDataElement(
                metainfo=sample.metainfo,
                pred_instances_3d=InstanceData(
                    bboxes_3d=boxes[i], scores_3d=scores[i], labels_3d=labels[i]
                ),
            )
            for i, sample in enumerate(data_samples)
        ]
