"""Synthetic two-sweep LiDAR: points on the sensor-facing box faces, ground and clutter.

Points are (x, y, z, intensity, dt). The front face returns a brighter intensity so the
heading of a box is observable, and the older sweep (dt = SWEEP_DT) sees each box where
it was, so velocity is observable, as with nuScenes' multi-sweep input. Clutter spans
every height bin of both sweeps, so calibration sees every BEV input channel non-zero.
"""

from __future__ import annotations

import numpy as np

from problems.bevfusion.mini.geometry import (
    BEV_RANGE,
    GROUND_Z,
    SWEEP_DT,
    Z_RANGE,
    box_faces,
)

DENSITY = 60.0
"""Points per square metre of face at 10 m; density falls with the squared range."""
GROUND_POINTS = 1200
CLUTTER_POINTS = 80
"""Per sweep."""
FRONT_INTENSITY, SIDE_INTENSITY = 0.9, 0.4


def _face_points(
    rng: np.random.Generator, boxes: np.ndarray, density_scale: float
) -> np.ndarray:
    """Points on the faces of ``boxes`` that face the sensor, with intensities."""
    faces = box_faces(boxes)
    chunks = []
    for n in range(len(boxes)):
        for f in range(5):
            centre, normal = faces["centre"][n, f], faces["normal"][n, f]
            if np.dot(normal, -centre) <= 0:
                continue
            hu, hv = faces["half_u"][n, f], faces["half_v"][n, f]
            distance = max(np.linalg.norm(centre), 1.0)
            count = DENSITY * density_scale * 4 * hu * hv * (10.0 / distance) ** 2
            count = int(np.clip(count, 4, 200))
            a, b = rng.uniform(-1, 1, (2, count, 1))
            xyz = centre + a * hu * faces["u"][n, f] + b * hv * faces["v"][n, f]
            intensity = FRONT_INTENSITY if f == 0 else SIDE_INTENSITY
            chunks.append(np.concatenate([xyz, np.full((count, 1), intensity)], 1))
    return np.concatenate(chunks) if chunks else np.zeros((0, 4))


def _ground(rng: np.random.Generator) -> np.ndarray:
    radius = rng.uniform(2.0, BEV_RANGE * 1.4, GROUND_POINTS)
    angle = rng.uniform(-np.pi, np.pi, GROUND_POINTS)
    ground = np.stack(
        [
            radius * np.cos(angle),
            radius * np.sin(angle),
            GROUND_Z + rng.normal(0, 0.03, GROUND_POINTS),
            np.full(GROUND_POINTS, 0.1),
        ],
        1,
    )
    return ground


def _clutter(rng: np.random.Generator) -> np.ndarray:
    return np.concatenate(
        [
            rng.uniform(-BEV_RANGE, BEV_RANGE, (CLUTTER_POINTS, 2)),
            rng.uniform(*Z_RANGE, (CLUTTER_POINTS, 1)),
            rng.uniform(0, 1, (CLUTTER_POINTS, 1)),
        ],
        1,
    )


def sample_points(rng: np.random.Generator, boxes: np.ndarray) -> np.ndarray:
    """Both sweeps of one scene, cropped to the BEV area, as float32 P x 5."""
    sweeps = []
    for dt, scale in ((0.0, 1.0), (SWEEP_DT, 0.5)):
        past = boxes.copy()
        past[:, :2] -= dt * boxes[:, 7:9]
        points = np.concatenate([_face_points(rng, past, scale), _clutter(rng)])
        if dt == 0.0:
            points = np.concatenate([points, _ground(rng)])
        points[:, :3] += rng.normal(0, 0.03, (len(points), 3))
        sweeps.append(np.concatenate([points, np.full((len(points), 1), dt)], 1))
    points = np.concatenate(sweeps)
    inside = np.all(np.abs(points[:, :2]) < BEV_RANGE, axis=1)
    return points[inside].astype(np.float32)
