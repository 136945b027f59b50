"""Random object layouts: class-typical boxes, unlabelled distractors and background
structures (walls, poles, bushes), none overlapping."""

from __future__ import annotations

import numpy as np

from problems.bevfusion.mini.geometry import (
    BEV_RANGE,
    CLASS_SIZES,
    GROUND_Z,
    STRUCTURE_COLOURS,
    STRUCTURE_SIZES,
)

CLASS_PROBS = np.array([0.4, 0.15, 0.25, 0.2])
MOVING_PROB = np.array([0.6, 0.5, 0.7, 0.0])
SPEED_RANGE = np.array([[2.0, 10.0], [2.0, 8.0], [0.5, 1.5], [0.0, 0.0]])
"""Moving objects drive or walk along their heading at a speed drawn from this range."""
MIN_OBJECTS, MAX_OBJECTS = 4, 10
MARGIN = 2.5
"""Objects stay this far inside the BEV area so the previous sweep is inside it too."""
MIN_DISTRACTORS, MAX_DISTRACTORS = 2, 5
MIN_STRUCTURES, MAX_STRUCTURES = 6, 12


def _place(
    rng: np.random.Generator,
    size: np.ndarray,
    boxes: list[np.ndarray],
    speed_range: np.ndarray | None = None,
) -> np.ndarray | None:
    """A box of ``size`` clear of ``boxes`` and the ego, or None if it collides.

    With ``speed_range`` it drives along its heading at a speed drawn from it.
    """
    xy = rng.uniform(-BEV_RANGE + MARGIN, BEV_RANGE - MARGIN, 2)
    radius = np.hypot(size[0], size[1]) / 2
    if np.hypot(*xy) < 3.0 + radius:
        return None
    for other in boxes:
        if np.hypot(*(xy - other[:2])) < radius + np.hypot(*other[3:5]) / 2 + 0.3:
            return None
    yaw = rng.uniform(-np.pi, np.pi)
    speed = 0.0 if speed_range is None else rng.uniform(*speed_range)
    velocity = speed * np.array([np.cos(yaw), np.sin(yaw)])
    return np.concatenate([xy, [GROUND_Z + size[2] / 2], size, [yaw], velocity])


def sample_layout(
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes N x 9, labels N, distractor boxes M x 9) for one scene.

    Distractors ("unknown objects") copy a random class's size, are static and return
    LiDAR like real objects, so only their neutral colour in the cameras tells them
    apart: the fused model needs its camera branch, as the real BEVFusion does.
    """
    count = rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1)
    distractors = rng.integers(MIN_DISTRACTORS, MAX_DISTRACTORS + 1)
    boxes, labels, others = [], [], []
    for _ in range(300):
        if len(boxes) == count and len(others) == distractors:
            break
        real = len(boxes) < count
        label = rng.choice(len(CLASS_PROBS), p=CLASS_PROBS)
        size = CLASS_SIZES[label] * rng.uniform(0.9, 1.1, 3)
        moving = real and rng.random() < MOVING_PROB[label]
        box = _place(rng, size, boxes + others, SPEED_RANGE[label] if moving else None)
        if box is None:
            continue
        if real:
            boxes.append(box)
            labels.append(label)
        else:
            others.append(box)
    return (
        np.array(boxes).reshape(-1, 9),
        np.array(labels, dtype=np.int64),
        np.array(others).reshape(-1, 9),
    )


def sample_structures(
    rng: np.random.Generator, occupied: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(boxes M x 9, camera colours M x 3) of static background clear of ``occupied``.

    Walls, poles and bushes return LiDAR as objects do, as buildings and vegetation do
    in real scenes, so a detector must tell shapes apart rather than find any return
    above the ground.
    """
    count = rng.integers(MIN_STRUCTURES, MAX_STRUCTURES + 1)
    boxes, kinds = [], []
    for _ in range(100):
        if len(boxes) == count:
            break
        kind = rng.integers(len(STRUCTURE_SIZES))
        box = _place(rng, rng.uniform(*STRUCTURE_SIZES[kind]), [*occupied, *boxes])
        if box is not None:
            boxes.append(box)
            kinds.append(kind)
    return np.array(boxes).reshape(-1, 9), STRUCTURE_COLOURS[kinds].reshape(-1, 3)
