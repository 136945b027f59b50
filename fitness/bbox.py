"""3D box objectives: F_box (quantized vs FP32 detections) and nuScenes-style mAP / NDS.

Detections are per-sample mappings with ``bboxes_3d`` (N x 9: x, y, z, dx, dy, dz, yaw,
vx, vy), ``scores_3d`` (N) and ``labels_3d`` (N), tensors or arrays. Samples are padded
into S x N arrays so matching runs for every sample at once; the only Python loop is over
the match rank (at most the number of boxes in one sample).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Detections = Mapping[str, object]

MAP_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
TP_THRESHOLD = 2.0
"""nuScenes measures the true-positive errors at a 2 m centre distance."""


def _field(samples: Sequence[Detections], key: str, width: int) -> list[np.ndarray]:
    return [
        np.asarray(
            s[key].detach().cpu() if hasattr(s[key], "detach") else s[key], np.float64
        ).reshape(-1, width)
        for s in samples
    ]


def _padded(
    samples: Sequence[Detections], min_score: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(boxes S x N x 9, scores S x N, labels S x N, valid S x N), by descending score.

    With ``min_score``, boxes scoring below it count as absent.
    """
    boxes = _field(samples, "bboxes_3d", 9)
    labels = _field(samples, "labels_3d", 1)
    scores = [
        _field([s], "scores_3d", 1)[0] if "scores_3d" in s else np.ones((len(b), 1))
        for s, b in zip(samples, boxes)
    ]
    width = max([len(b) for b in boxes] + [1])
    out_boxes = np.zeros((len(samples), width, 9))
    out_scores = np.full((len(samples), width), -np.inf)
    out_labels = np.full((len(samples), width), -1, dtype=np.int64)
    for i, (b, s, lab) in enumerate(zip(boxes, scores, labels)):
        order = np.argsort(-s[:, 0], kind="stable")
        out_boxes[i, : len(b)] = b[order]
        out_scores[i, : len(b)] = s[order, 0]
        out_labels[i, : len(b)] = lab[order, 0]
    valid = out_labels >= 0
    if min_score is not None:
        valid &= out_scores >= min_score
    return out_boxes, out_scores, out_labels, valid


def centre_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """S x N x M bird's-eye-view distances between box centres."""
    return np.linalg.norm(a[:, :, None, :2] - b[:, None, :, :2], axis=-1)


def greedy_match(distance: np.ndarray) -> np.ndarray:
    """For each row in order, the nearest column not yet taken (-1 if none is finite).

    ``distance`` is S x R x C with inf where a pair may not match; rows must already be
    in priority (descending score) order. Returns S x R column indices.
    """
    samples, rows, cols = distance.shape
    taken = np.zeros((samples, cols), dtype=bool)
    matched = np.full((samples, rows), -1, dtype=np.int64)
    every = np.arange(samples)
    for r in range(rows):
        d = np.where(taken, np.inf, distance[:, r])
        best = d.argmin(1) if cols else np.zeros(samples, dtype=np.int64)
        ok = np.isfinite(d[every, best]) if cols else np.zeros(samples, dtype=bool)
        matched[ok, r] = best[ok]
        taken[every[ok], best[ok]] = True
    return matched


def wrap_angle(angle: np.ndarray, period: float = 2 * np.pi) -> np.ndarray:
    """Into [-period / 2, period / 2)."""
    return (angle + period / 2) % period - period / 2


def aligned_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3D IoU of boxes with sizes ``a[..., 3:6]`` and ``b[..., 3:6]`` after aligning
    centre and yaw (nuScenes' scale error is 1 - this)."""
    inter = np.prod(np.minimum(a[..., 3:6], b[..., 3:6]), -1)
    union = np.prod(a[..., 3:6], -1) + np.prod(b[..., 3:6], -1) - inter
    return inter / np.maximum(union, 1e-12)


def _pairs(boxes: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """The matched partner of every row box (row 0's box where unmatched)."""
    return np.take_along_axis(boxes, np.maximum(matched, 0)[..., None], axis=1)


def box_fidelity(
    reference: Sequence[Detections],
    outputs: Sequence[Detections],
    ref_score: float = 0.3,
    max_distance: float = 2.0,
    center_weight: float = 0.5,
) -> dict[str, float]:
    """F_box = a * E_center + (1 - a) * E_yaw+size of ``outputs`` against ``reference``.

    Defined in docs/fbox.md: references are FP32 boxes scoring >= ``ref_score``,
    candidates the quantized boxes scoring >= ``ref_score``; per sample and class,
    references in descending score take the nearest unmatched candidate within
    ``max_distance``.
    A matched pair costs min(d / D, 1) in E_center and
    0.5 |wrap(dyaw)| / pi + 0.5 (1 - IoU_aligned) in E_yaw+size; an unmatched reference
    or candidate costs 1 in both. Both errors are means over references + unmatched
    candidates (0 when there are none), so F_box is 0 iff the detections agree.
    """
    if len(reference) != len(outputs):
        raise ValueError(
            f"{len(reference)} reference samples but {len(outputs)} outputs"
        )
    if not reference:
        return {"f_box": 0.0, "e_center": 0.0, "e_yaw_size": 0.0}
    ref, _, ref_labels, ref_valid = _padded(reference, ref_score)
    cand, _, cand_labels, cand_valid = _padded(outputs, ref_score)
    distance = centre_distances(ref, cand)
    allowed = (
        ref_valid[:, :, None]
        & cand_valid[:, None, :]
        & (ref_labels[:, :, None] == cand_labels[:, None, :])
        & (distance <= max_distance)
    )
    matched = greedy_match(np.where(allowed, distance, np.inf))
    hit = matched >= 0
    partner = _pairs(cand, matched)
    d = np.take_along_axis(distance, np.maximum(matched, 0)[..., None], axis=2)[..., 0]
    centre = np.where(hit, np.minimum(d / max_distance, 1.0), 1.0)
    yaw = np.abs(wrap_angle(partner[..., 6] - ref[..., 6])) / np.pi
    yaw_size = np.where(hit, 0.5 * yaw + 0.5 * (1 - aligned_iou(ref, partner)), 1.0)
    taken = np.zeros_like(cand_valid)
    rows, cols = np.nonzero(hit)
    taken[rows, matched[rows, cols]] = True
    hallucinated = int((cand_valid & ~taken).sum())
    count = int(ref_valid.sum()) + hallucinated
    if count == 0:
        return {"f_box": 0.0, "e_center": 0.0, "e_yaw_size": 0.0}
    e_center = (centre[ref_valid].sum() + hallucinated) / count
    e_yaw_size = (yaw_size[ref_valid].sum() + hallucinated) / count
    return {
        "f_box": float(center_weight * e_center + (1 - center_weight) * e_yaw_size),
        "e_center": float(e_center),
        "e_yaw_size": float(e_yaw_size),
    }


def average_precision(
    scores: np.ndarray, true_positive: np.ndarray, num_gt: int
) -> float:
    """nuScenes AP: precision on 101 recall points, recall and precision above 0.1."""
    if num_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(true_positive[order])
    fp = np.cumsum(~true_positive[order])
    if len(tp) == 0:
        return 0.0
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / num_gt
    curve = np.interp(np.linspace(0, 1, 101), recall, precision, right=0)
    curve = np.clip(curve[11:] - 0.1, 0, None)
    return float(curve.mean() / 0.9)


def detection_scores(
    predictions: Sequence[Detections],
    ground_truth: Sequence[Detections],
    num_classes: int,
    symmetric_classes: Sequence[int] = (),
    static_classes: Sequence[int] = (),
) -> dict[str, float]:
    """nuScenes-style mAP (centre thresholds 0.5/1/2/4 m) and NDS against ground truth.

    True-positive errors (at 2 m) are plain means over the matches of each class, not
    nuScenes' recall-interpolated means; there are no attributes, so the NDS here is
    ``(5 mAP + sum over ATE, ASE, AOE, AVE of (1 - min(1, err))) / 9``. Yaw of
    ``symmetric_classes`` is compared modulo pi and velocity of ``static_classes`` is
    not scored, as nuScenes does for barriers.
    """
    pred, pred_scores, pred_labels, pred_valid = _padded(predictions)
    gt, _, gt_labels, gt_valid = _padded(ground_truth)
    distance = centre_distances(pred, gt)
    same = (
        pred_valid[:, :, None]
        & gt_valid[:, None, :]
        & (pred_labels[:, :, None] == gt_labels[:, None, :])
    )
    metrics: dict[str, float] = {}
    aps, errors = [], {"mATE": [], "mASE": [], "mAOE": [], "mAVE": []}
    for threshold in MAP_THRESHOLDS:
        matched = greedy_match(
            np.where(same & (distance < threshold), distance, np.inf)
        )
        for k in range(num_classes):
            mine = pred_valid & (pred_labels == k)
            num_gt = int((gt_valid & (gt_labels == k)).sum())
            ap = average_precision(pred_scores[mine], matched[mine] >= 0, num_gt)
            metrics[f"AP_{k}@{threshold:g}"] = ap
            aps.append(ap)
        if threshold == TP_THRESHOLD:
            partner = _pairs(gt, matched)
            for k in range(num_classes):
                hit = pred_valid & (pred_labels == k) & (matched >= 0)
                p, g = pred[hit], partner[hit]
                period = np.pi if k in symmetric_classes else 2 * np.pi
                class_errors = {
                    "mATE": np.linalg.norm(p[:, :2] - g[:, :2], axis=1),
                    "mASE": 1 - aligned_iou(p, g),
                    "mAOE": np.abs(wrap_angle(p[:, 6] - g[:, 6], period)),
                    "mAVE": np.linalg.norm(p[:, 7:9] - g[:, 7:9], axis=1),
                }
                if not (gt_valid & (gt_labels == k)).any():
                    continue
                for name, values in class_errors.items():
                    if name == "mAVE" and k in static_classes:
                        continue
                    errors[name].append(float(values.mean()) if len(values) else 1.0)
    metrics["mAP"] = float(np.nanmean(aps)) if not np.all(np.isnan(aps)) else 0.0
    for name, values in errors.items():
        metrics[name] = float(np.mean(values)) if values else 1.0
    metrics["NDS"] = (
        5 * metrics["mAP"] + sum(1 - min(1.0, metrics[n]) for n in errors)
    ) / 9
    return metrics
