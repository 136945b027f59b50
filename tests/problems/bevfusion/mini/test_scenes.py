import numpy as np

from problems.bevfusion.mini.geometry import (
    BEV_RANGE,
    CLASS_SIZES,
    DISTRACTOR_COLOUR,
    GROUND_Z,
    IMAGE_SIZE,
    STRUCTURE_COLOURS,
    STRUCTURE_SIZES,
    camera_rig,
)
from problems.bevfusion.mini.layout import (
    MAX_STRUCTURES,
    MIN_STRUCTURES,
    sample_layout,
    sample_structures,
)
from problems.bevfusion.mini.lidar_sim import sample_points
from problems.bevfusion.mini.render import render_camera
from problems.bevfusion.mini.scenes import make_scene


def test_scenes_are_deterministic_and_streams_differ():
    a, b = make_scene(3, 7), make_scene(3, 7)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.images, b.images)
    assert np.array_equal(a.gt_bboxes_3d, b.gt_bboxes_3d)
    assert not np.array_equal(make_scene(4, 7).points, a.points)


def test_boxes_are_class_typical_on_the_ground():
    for index in range(5):
        scene = make_scene(0, index)
        boxes, labels = scene.gt_bboxes_3d, scene.gt_labels_3d
        assert 4 <= len(boxes) <= 10 and boxes.shape[1] == 9
        ratio = boxes[:, 3:6] / CLASS_SIZES[labels]
        assert np.all((ratio > 0.89) & (ratio < 1.11))
        bottoms = boxes[:, 2] - boxes[:, 5] / 2
        assert np.allclose(bottoms, GROUND_Z, atol=1e-5)
        assert np.all(np.abs(boxes[:, :2]) < BEV_RANGE)


def test_lidar_sees_every_box_in_the_current_sweep():
    scene = make_scene(0, 2)
    current = scene.points[scene.points[:, 4] == 0]
    assert np.all(np.abs(scene.points[:, :2]) < BEV_RANGE)
    for box in scene.gt_bboxes_3d:
        near = (
            np.linalg.norm(current[:, :2] - box[:2], axis=1)
            < np.hypot(*box[3:5]) / 2 + 0.2
        )
        assert (current[near, 2] > GROUND_Z + 0.2).sum() >= 4


def test_distractors_return_lidar_but_are_not_ground_truth():
    rng = np.random.default_rng([0, 5])
    boxes, labels, distractors = sample_layout(rng)
    assert 2 <= len(distractors) <= 5 and len(boxes) == len(labels)
    assert np.all(distractors[:, 7:9] == 0)
    scene = make_scene(0, 5)
    assert np.array_equal(scene.gt_bboxes_3d, boxes.astype(np.float32))
    current = scene.points[scene.points[:, 4] == 0]
    for box in distractors:
        near = (
            np.linalg.norm(current[:, :2] - box[:2], axis=1) < np.hypot(*box[3:5]) / 2
        )
        assert (current[near, 2] > GROUND_Z + 0.2).sum() >= 4
    cam2img, lidar2cam = camera_rig()
    ahead = np.array([[10.0, 0, GROUND_Z + 0.85, 4.6, 1.9, 1.7, 0.0, 0, 0]])
    image = render_camera(
        ahead, DISTRACTOR_COLOUR[None], cam2img[0], np.linalg.inv(lidar2cam[0])
    )
    pixel = image[:, IMAGE_SIZE[0] // 2 + 2, IMAGE_SIZE[1] // 2]
    assert np.allclose(
        pixel / pixel.sum(), DISTRACTOR_COLOUR / DISTRACTOR_COLOUR.sum(), atol=0.05
    )


def test_background_structures_return_lidar_and_are_not_ground_truth():
    rng = np.random.default_rng(0)
    objects = np.array([[10.0, 0, GROUND_Z + 0.85, 4.6, 1.9, 1.7, 0.0, 0, 0]])
    structures, colours = sample_structures(rng, objects)
    assert MIN_STRUCTURES <= len(structures) <= MAX_STRUCTURES
    assert len(colours) == len(structures)
    sizes = structures[:, 3:6]
    fits = (sizes[:, None] >= STRUCTURE_SIZES[None, :, 0] - 1e-9) & (
        sizes[:, None] <= STRUCTURE_SIZES[None, :, 1] + 1e-9
    )
    kinds = fits.all(2).argmax(1)
    assert fits.all(2).any(1).all()
    assert np.array_equal(colours, STRUCTURE_COLOURS[kinds])
    assert np.all(structures[:, 7:9] == 0)
    clearance = np.hypot(*(structures[:, :2] - objects[0, :2]).T)
    assert np.all(clearance > np.hypot(*objects[0, 3:5]) / 2)
    points = sample_points(rng, structures)
    for box in structures:
        near = np.linalg.norm(points[:, :2] - box[:2], axis=1) < np.hypot(*box[3:5]) / 2
        assert (points[near, 2] > GROUND_Z + 0.2).sum() >= 4
