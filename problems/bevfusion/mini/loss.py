"""Training targets and losses of the TransFusion head (CenterPoint heatmap + query losses).

Matching is by construction rather than Hungarian: during training every ground-truth
box forces a query at its own (class, cell) (``TransFusionHead.proposals``), so query
``i < n`` is matched to box ``i`` and every other query is a negative. That converges in
minutes on a CPU, which TransFusion's assignment from random heatmap peaks does not.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

HEATMAP_SIGMA = 0.8
"""Gaussian radius of a heatmap target in cells."""
CODE_WEIGHTS = torch.tensor([1.0, 1, 1, 1, 1, 1, 1, 1, 0.2, 0.2])
"""center x/y, height, log dims x3, sin/cos yaw, velocity x/y (TransFusion's weights)."""
LOSS_WEIGHTS = {"loss_heatmap": 1.0, "loss_cls": 1.0, "loss_bbox": 0.25}


def box_cells(
    boxes: Tensor, bev_min: Tensor, cell_size: float, grid: tuple[int, int]
) -> Tensor:
    """N x 2 integer (x, y) cells of box centres, clamped into the grid."""
    cells = ((boxes[:, :2] - bev_min) / cell_size).floor().long()
    return torch.stack(
        [cells[:, 0].clamp(0, grid[0] - 1), cells[:, 1].clamp(0, grid[1] - 1)], 1
    )


def heatmap_targets(
    boxes: list[Tensor], labels: list[Tensor], num_classes: int, head
) -> Tensor:
    """B x K x X x Y Gaussian peaks (1 at each box's cell) per class."""
    gx, gy = head.grid
    xs = torch.arange(gx, dtype=torch.float32)[:, None]
    ys = torch.arange(gy, dtype=torch.float32)[None]
    target = torch.zeros(len(boxes), num_classes, gx, gy)
    for b, (box, label) in enumerate(zip(boxes, labels)):
        for (cx, cy), k in zip(
            box_cells(box, head.bev_min, head.cell_size, head.grid), label
        ):
            peak = torch.exp(
                -((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * HEATMAP_SIGMA**2)
            )
            target[b, k] = torch.maximum(target[b, k], peak)
    return target


def forced_queries(boxes: list[Tensor], labels: list[Tensor], head) -> Tensor:
    """B x P flat (class, cell) indices of the ground-truth queries, -1 padded.

    A second box of the same class in the same cell gets no query of its own.
    """
    forced = torch.full((len(boxes), head.num_proposals), -1, dtype=torch.long)
    cells_per_class = head.grid[0] * head.grid[1]
    for b, (box, label) in enumerate(zip(boxes, labels)):
        cells = box_cells(box, head.bev_min, head.cell_size, head.grid)
        index = label * cells_per_class + cells[:, 0] * head.grid[1] + cells[:, 1]
        seen = set()
        for i, value in enumerate(index.tolist()[: head.num_proposals]):
            if value not in seen:
                forced[b, i] = value
                seen.add(value)
    return forced


def box_codes(boxes: Tensor, bev_min: Tensor, cell_size: float) -> Tensor:
    """N x 10 regression targets in the head's output units."""
    return torch.cat(
        [
            (boxes[:, :2] - bev_min) / cell_size,
            boxes[:, 2:3],
            boxes[:, 3:6].log(),
            torch.sin(boxes[:, 6:7]),
            torch.cos(boxes[:, 6:7]),
            boxes[:, 7:9],
        ],
        1,
    )


def gaussian_focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos = -torch.log(p) * (1 - p) ** 2 * positive
    neg = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - positive)
    return (pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def detection_loss(
    preds: dict[str, Tensor],
    forced: Tensor,
    boxes: list[Tensor],
    labels: list[Tensor],
    head,
) -> dict[str, Tensor]:
    """Heatmap, query classification and box regression losses, already weighted."""
    num_classes = preds["heatmap"].shape[-1]
    matched = forced >= 0
    cls_target = torch.zeros_like(preds["heatmap"])
    codes = torch.zeros(*forced.shape, len(CODE_WEIGHTS))
    for b, (box, label) in enumerate(zip(boxes, labels)):
        rows = matched[b, : len(box)].nonzero()[:, 0]
        cls_target[b, rows, label[rows]] = 1.0
        codes[b, rows] = box_codes(box[rows], head.bev_min, head.cell_size)
    count = matched.sum().clamp(min=1)
    predicted = torch.cat(
        [preds[k] for k in ("center", "height", "dim", "rot", "vel")], -1
    )
    l1 = ((predicted - codes).abs() * CODE_WEIGHTS)[matched].sum() / count
    losses = {
        "loss_heatmap": gaussian_focal_loss(
            preds["dense_heatmap"], heatmap_targets(boxes, labels, num_classes, head)
        ),
        "loss_cls": sigmoid_focal_loss(preds["heatmap"], cls_target, reduction="sum")
        / count,
        "loss_bbox": l1,
    }
    return {name: LOSS_WEIGHTS[name] * value for name, value in losses.items()}
