"""One synthetic scene, deterministic from (seed, index): boxes, LiDAR, camera images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from problems.bevfusion.mini.geometry import (
    CLASS_COLOURS,
    DISTRACTOR_COLOUR,
    camera_rig,
)
from problems.bevfusion.mini.layout import sample_layout, sample_structures
from problems.bevfusion.mini.lidar_sim import sample_points
from problems.bevfusion.mini.render import render_camera

IMAGE_NOISE = 0.02


@dataclass(frozen=True)
class Scene:
    """Inputs and ground truth of one sample, as numpy arrays."""

    points: np.ndarray
    """P x 5: x, y, z, intensity, dt."""
    images: np.ndarray
    """N_cam x 3 x H x W in [0, 1]."""
    cam2img: np.ndarray
    lidar2cam: np.ndarray
    gt_bboxes_3d: np.ndarray
    """N x 9: x, y, z, dx, dy, dz, yaw, vx, vy (distractors are not ground truth)."""
    gt_labels_3d: np.ndarray


def make_scene(seed: int, index: int) -> Scene:
    """Scene ``index`` of the stream ``seed``; the same pair always gives the same scene."""
    rng = np.random.default_rng([seed, index])
    boxes, labels, distractors = sample_layout(rng)
    structures, structure_colours = sample_structures(
        rng, np.concatenate([boxes, distractors])
    )
    everything = np.concatenate([boxes, distractors, structures])
    points = sample_points(rng, everything)
    colours = np.concatenate(
        [
            CLASS_COLOURS[labels],
            np.tile(DISTRACTOR_COLOUR, (len(distractors), 1)),
            structure_colours,
        ]
    )
    cam2img, lidar2cam = camera_rig()
    images = np.stack(
        [
            render_camera(everything, colours, k, np.linalg.inv(pose))
            for k, pose in zip(cam2img, lidar2cam)
        ]
    )
    images += rng.normal(0, IMAGE_NOISE, images.shape).astype(np.float32)
    return Scene(
        points,
        np.clip(images, 0, 1),
        cam2img.astype(np.float32),
        lidar2cam.astype(np.float32),
        boxes.astype(np.float32),
        labels,
    )
