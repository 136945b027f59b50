"""Scene geometry shared by the data generator and the model: ranges, classes, camera rig.

Frames follow mmdet3d's LiDAR convention: x forward, y left, z up, origin at the sensor,
ground at ``GROUND_Z``. Boxes are (x, y, z, dx, dy, dz, yaw, vx, vy) with z the box's
gravity centre and dx its length along the heading ``yaw``.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("car", "truck", "pedestrian", "barrier")
CLASS_SIZES = np.array(
    [[4.6, 1.95, 1.7], [7.0, 2.6, 3.0], [0.75, 0.7, 1.75], [0.5, 2.4, 1.0]]
)
"""Mean (length, width, height) per class in metres, nuScenes-like."""

CLASS_COLOURS = np.array(
    [[0.85, 0.2, 0.2], [0.2, 0.35, 0.85], [0.2, 0.8, 0.3], [0.95, 0.6, 0.1]]
)
DISTRACTOR_COLOUR = np.array([0.3, 0.27, 0.24])
"""Unknown objects: LiDAR-identical to a class, dark brown-grey in the cameras."""

STRUCTURE_SIZES = np.array(
    [
        [[4.0, 0.2, 1.8], [10.0, 0.4, 3.0]],
        [[0.25, 0.25, 2.5], [0.4, 0.4, 3.6]],
        [[1.0, 1.0, 0.6], [2.5, 2.5, 1.4]],
    ]
)
"""(smallest, largest) (length, width, height) of each background structure kind:
wall, pole, bush."""
STRUCTURE_COLOURS = np.array(
    [[0.62, 0.58, 0.5], [0.22, 0.22, 0.24], [0.25, 0.45, 0.18]]
)
"""Camera colour of each structure kind: beige wall, dark pole, green bush."""

BEV_RANGE = 25.6
"""Half-width of the square BEV area in metres (x and y in [-25.6, 25.6))."""
Z_RANGE = (-2.0, 2.0)
GROUND_Z = -1.8
SWEEP_DT = 0.5
"""Age of the previous LiDAR sweep in seconds; two sweeps make velocity observable."""

IMAGE_SIZE = (32, 96)
"""(height, width) of every camera image."""
CAMERA_YAWS = (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi)
CAMERA_HEIGHT = -0.2
CAMERA_FOCAL = 48.0
"""Focal length in pixels: a 90 degree horizontal field of view at width 96."""


def intrinsics() -> np.ndarray:
    """``cam2img`` as a 4 x 4 matrix, as mmdet3d stores it."""
    height, width = IMAGE_SIZE
    k = np.eye(4)
    k[0, 0] = k[1, 1] = CAMERA_FOCAL
    k[0, 2], k[1, 2] = width / 2, height / 2
    return k


def camera_to_lidar(yaw: float) -> np.ndarray:
    """Pose of an OpenCV camera (x right, y down, z forward) looking along ``yaw``."""
    forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = 0.5 * forward + np.array([0.0, 0.0, CAMERA_HEIGHT])
    return pose


def camera_rig() -> tuple[np.ndarray, np.ndarray]:
    """(cam2img, lidar2cam) for every camera, each N_cam x 4 x 4."""
    cam2img = np.stack([intrinsics()] * len(CAMERA_YAWS))
    lidar2cam = np.stack([np.linalg.inv(camera_to_lidar(yaw)) for yaw in CAMERA_YAWS])
    return cam2img, lidar2cam


def box_faces(boxes: np.ndarray) -> dict[str, np.ndarray]:
    """The five faces (front, back, left, right, top) of N boxes, for sampling and rendering.

    Each face is a centre, an outward normal and two in-plane axes with half extents,
    all N x 5 (x 3); the front face is the one the heading points through.
    """
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    zeros, ones = np.zeros_like(cos), np.ones_like(cos)
    ex = np.stack([cos, sin, zeros], -1)
    ey = np.stack([-sin, cos, zeros], -1)
    ez = np.stack([zeros, zeros, ones], -1)
    half = boxes[:, 3:6] / 2
    hl, hw, hh = half[:, 0:1], half[:, 1:2], half[:, 2:3]
    normals = np.stack([ex, -ex, ey, -ey, ez], 1)
    offsets = np.stack([hl, hl, hw, hw, hh], 1)
    return {
        "centre": boxes[:, None, :3] + normals * offsets,
        "normal": normals,
        "u": np.stack([ey, ey, ex, ex, ex], 1),
        "v": np.stack([ez, ez, ez, ez, ey], 1),
        "half_u": np.stack([hw, hw, hl, hl, hl], 1)[..., 0],
        "half_v": np.stack([hh, hh, hh, hh, hw], 1)[..., 0],
    }
