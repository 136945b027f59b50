import math

import numpy as np
import pytest
import torch

from fitness.bbox import (
    aligned_iou,
    average_precision,
    box_fidelity,
    detection_scores,
    greedy_match,
)

CAR = [0.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]
PED = [10.0, 5.0, -1.0, 0.8, 0.8, 1.8, 1.0, 1.0, 0.0]


def dets(boxes, scores=None, labels=None):
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 9)
    return {
        "bboxes_3d": torch.tensor(boxes, dtype=torch.float32),
        "scores_3d": torch.tensor(scores if scores is not None else [0.9] * len(boxes)),
        "labels_3d": torch.tensor(labels if labels is not None else [0] * len(boxes)),
    }


def moved(box, **changes):
    fields = dict(zip(["x", "y", "z", "dx", "dy", "dz", "yaw", "vx", "vy"], box))
    fields.update(changes)
    return list(fields.values())


def test_identical_detections_score_zero():
    ref = [dets([CAR, PED], [0.9, 0.8], [0, 2]), dets([], [], [])]
    assert box_fidelity(ref, ref) == {"f_box": 0.0, "e_center": 0.0, "e_yaw_size": 0.0}


def test_nothing_matching_scores_one():
    ref = [dets([CAR], [0.9], [0])]
    far = [dets([moved(CAR, x=5.0)], [0.9], [0])]
    other_class = [dets([CAR], [0.9], [1])]
    too_weak = [dets([CAR], [0.1], [0])]
    for outputs in (far, other_class, too_weak):
        assert box_fidelity(ref, outputs)["f_box"] == pytest.approx(1.0)


def test_shifted_box():
    # d = 1 m of D = 2 m: E_center = 0.5, E_yaw+size = 0, F_box = 0.25
    metrics = box_fidelity([dets([CAR])], [dets([moved(CAR, x=0.6, y=0.8)])])
    assert metrics["e_center"] == pytest.approx(0.5)
    assert metrics["e_yaw_size"] == pytest.approx(0.0, abs=1e-7)
    assert metrics["f_box"] == pytest.approx(0.25)


def test_rotated_box():
    # yaw off by pi/2: 0.5 * (pi/2) / pi = 0.25; size and centre agree
    metrics = box_fidelity([dets([CAR])], [dets([moved(CAR, yaw=math.pi / 2)])])
    assert metrics["e_center"] == pytest.approx(0.0)
    assert metrics["e_yaw_size"] == pytest.approx(0.25)
    assert metrics["f_box"] == pytest.approx(0.125)


def test_yaw_difference_wraps():
    metrics = box_fidelity(
        [dets([moved(CAR, yaw=3.0)])], [dets([moved(CAR, yaw=-3.0)])]
    )
    assert metrics["e_yaw_size"] == pytest.approx(
        0.5 * (2 * math.pi - 6.0) / math.pi, rel=1e-5
    )


def test_resized_box():
    # length 4 -> 2: IoU 0.5, E_yaw+size = 0.25
    metrics = box_fidelity([dets([CAR])], [dets([moved(CAR, dx=2.0)])])
    assert metrics["e_yaw_size"] == pytest.approx(0.25)


def test_missing_box():
    # two references, one found exactly: both errors (0 + 1) / 2
    ref = [dets([CAR, PED], [0.9, 0.8], [0, 2])]
    out = [dets([CAR], [0.9], [0])]
    assert box_fidelity(ref, out) == pytest.approx(
        {"f_box": 0.5, "e_center": 0.5, "e_yaw_size": 0.5}
    )


def test_hallucinated_box():
    # one exact match plus one extra candidate: (0 + 1) / 2
    ref = [dets([CAR], [0.9], [0])]
    out = [dets([CAR, PED], [0.9, 0.7], [0, 2])]
    assert box_fidelity(ref, out)["f_box"] == pytest.approx(0.5)


def test_weight_a_is_configurable():
    metrics = box_fidelity(
        [dets([CAR])], [dets([moved(CAR, x=1.0)])], center_weight=1.0
    )
    assert metrics["f_box"] == pytest.approx(0.5)


def test_greedy_match_prefers_high_scores_and_nearest():
    distance = np.array([[[1.0, 0.5], [0.2, np.inf]]])
    # row 0 (higher score) takes column 1 (nearest); row 1 then takes column 0
    assert greedy_match(distance).tolist() == [[1, 0]]
    distance = np.array([[[0.2, np.inf], [0.1, np.inf]]])
    assert greedy_match(distance).tolist() == [[0, -1]]


def test_aligned_iou():
    a = np.array(CAR)
    assert aligned_iou(a, a) == pytest.approx(1.0)
    assert aligned_iou(a, np.array(moved(CAR, dz=3.0))) == pytest.approx(0.5)


def test_average_precision_perfect_and_empty():
    assert average_precision(
        np.array([0.9, 0.8]), np.array([True, True]), 2
    ) == pytest.approx(1.0)
    assert average_precision(np.array([0.9]), np.array([False]), 1) == 0.0
    assert math.isnan(average_precision(np.array([]), np.array([], dtype=bool), 0))


def test_detection_scores_perfect_predictions():
    gt = [
        {"bboxes_3d": torch.tensor([CAR, PED]), "labels_3d": torch.tensor([0, 2])},
        {"bboxes_3d": torch.tensor([PED]), "labels_3d": torch.tensor([2])},
    ]
    preds = [dets([CAR, PED], [0.9, 0.8], [0, 2]), dets([PED], [0.7], [2])]
    metrics = detection_scores(preds, gt, num_classes=4)
    assert metrics["mAP"] == pytest.approx(1.0)
    assert metrics["NDS"] == pytest.approx(1.0)
    assert metrics["mATE"] == pytest.approx(0.0, abs=1e-6)


def test_detection_scores_thresholds_and_errors():
    gt = [{"bboxes_3d": torch.tensor([CAR]), "labels_3d": torch.tensor([0])}]
    # 1.5 m off: a hit at 2 and 4 m, a miss at 0.5 and 1 m -> mAP 0.5
    preds = [dets([moved(CAR, x=1.5, yaw=math.pi)], [0.9], [0])]
    metrics = detection_scores(preds, gt, num_classes=1)
    assert metrics["mAP"] == pytest.approx(0.5)
    assert metrics["mATE"] == pytest.approx(1.5)
    assert metrics["mAOE"] == pytest.approx(math.pi)
    symmetric = detection_scores(preds, gt, num_classes=1, symmetric_classes=[0])
    assert symmetric["mAOE"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["NDS"] == pytest.approx((5 * 0.5 + 0 + 1 + 0 + 1) / 9)
