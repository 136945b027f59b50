"""``Problem`` hooks for any mmdet3d-style 3D detector (the mini one or a real BEVFusion).

They rely only on mmdet3d's API shape: ``model.test_step(data)`` returns one data sample
per scene whose ``pred_instances_3d`` has ``bboxes_3d`` (a tensor, or mmdet3d boxes with
``.tensor``), ``scores_3d`` and ``labels_3d``; batches carry ``gt_instances_3d`` in their
``data_samples``. Outputs are plain per-sample dicts of CPU tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import torch
from torch import Tensor, nn

from fitness.bbox import box_fidelity, detection_scores

BOX_DIMS = 9
"""x, y, z, dx, dy, dz, yaw, vx, vy (mmdet3d's nuScenes boxes)."""


def _boxes(boxes) -> Tensor:
    tensor = getattr(boxes, "tensor", boxes)
    return tensor.detach()[:, :BOX_DIMS].float().cpu()


def _plain(instances) -> dict[str, Tensor]:
    out = {
        "bboxes_3d": _boxes(instances.bboxes_3d),
        "labels_3d": instances.labels_3d.detach().cpu(),
    }
    if "scores_3d" in instances:
        out["scores_3d"] = instances.scores_3d.detach().float().cpu()
    return out


def run_detector(model: nn.Module, batch: dict) -> list[dict[str, Tensor]]:
    """``Problem.run``: the per-sample predictions of ``model.test_step(batch)``."""
    with torch.no_grad():
        samples = model.test_step(batch)
    return [_plain(sample.pred_instances_3d) for sample in samples]


def ground_truth(batches: Sequence[dict]) -> list[dict[str, Tensor]]:
    """Per-sample ground-truth boxes and labels of every batch, in order."""
    return [
        _plain(sample.gt_instances_3d)
        for batch in batches
        for sample in batch["data_samples"]
    ]


def flatten(outputs: Sequence[Sequence[dict]]) -> list[dict]:
    """Per-batch lists of per-sample outputs -> one list of samples."""
    return list(chain.from_iterable(outputs))


class BoxErrors:
    """``Problem.error_metrics``: F_box and its two parts against the FP32 detections."""

    def __init__(
        self, ref_score: float, max_distance: float, center_weight: float
    ) -> None:
        self.settings = {
            "ref_score": ref_score,
            "max_distance": max_distance,
            "center_weight": center_weight,
        }

    def __call__(self, reference: Sequence, outputs: Sequence) -> dict[str, float]:
        return box_fidelity(flatten(reference), flatten(outputs), **self.settings)


class DetectionMetric:
    """``Problem.task_metric``: nuScenes-style mAP and NDS against the batches' ground truth."""

    def __init__(
        self,
        num_classes: int,
        symmetric_classes: Sequence[int] = (),
        static_classes: Sequence[int] = (),
    ) -> None:
        self.num_classes = num_classes
        self.symmetric_classes = tuple(symmetric_classes)
        self.static_classes = tuple(static_classes)

    def __call__(self, outputs: Sequence, batches: Sequence) -> dict[str, float]:
        scores = detection_scores(
            flatten(outputs),
            ground_truth(batches),
            self.num_classes,
            self.symmetric_classes,
            self.static_classes,
        )
        return {"mAP": scores["mAP"], "NDS": scores["NDS"]}
