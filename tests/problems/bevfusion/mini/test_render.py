"""The camera renderer: a box ahead of a camera is drawn in its class colour."""

import numpy as np

from problems.bevfusion.mini.geometry import (
    CLASS_COLOURS,
    GROUND_Z,
    IMAGE_SIZE,
    camera_rig,
)
from problems.bevfusion.mini.render import render_camera


def test_camera_sees_a_box_in_front_in_its_class_colour():
    cam2img, lidar2cam = camera_rig()
    box = np.array([[10.0, 0, GROUND_Z + 0.85, 4.6, 1.9, 1.7, np.pi / 2, 0, 0]])
    image = render_camera(
        box, CLASS_COLOURS[[0]], cam2img[0], np.linalg.inv(lidar2cam[0])
    )
    assert image.shape == (3, *IMAGE_SIZE)
    centre = image[:, IMAGE_SIZE[0] // 2 + 2, IMAGE_SIZE[1] // 2]
    assert centre[0] > 2 * centre[1]  # red car
    behind = render_camera(
        box, CLASS_COLOURS[[0]], cam2img[2], np.linalg.inv(lidar2cam[2])
    )
    assert not np.any(behind[0] > 2 * behind[1] + 0.05)
