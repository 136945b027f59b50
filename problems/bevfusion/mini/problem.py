"""The ``bevfusion_mini`` problem: the shipped mini BEVFusion on synthetic scenes.

Calibration, fitness and validation scenes come from their own seed streams (the
``calibration``, ``fitness`` and ``test`` splits, never seen in training), so no scene
plays two roles. The error metrics are F_box and its parts against the FP32 detections; the
task metric is mAP / NDS against the scenes' ground truth.
"""

from __future__ import annotations

from functools import partial

from evoquant.errors import UserError
from problems.base import ExportPart, Problem
from problems.bevfusion.detection import BoxErrors, DetectionMetric, run_detector
from problems.bevfusion.mini.checkpoint import WEIGHTS, load_model
from problems.bevfusion.mini.dataset import batches
from problems.bevfusion.mini.geometry import CLASSES
from problems.bevfusion.mini.registry import DATASETS
from problems.registry import register_problem

EXPORT_PARTS = tuple(
    ExportPart(name, name)
    for name in (
        "img_backbone",
        "img_neck",
        "view_transform.dtransform",
        "view_transform.depthnet",
        "view_transform.downsample",
        "fusion_layer",
        "pts_backbone",
        "pts_neck",
        "bbox_head",
    )
)
"""What deployment pipelines for BEVFusion export: the quantized sub-networks around the
BEV pooling and the camera geometry (a matrix inverse), which ONNX cannot express."""

BARRIER = CLASSES.index("barrier")


def scene_batches(split: str, batch_size: int, count: int, seed: int) -> list[dict]:
    """``count`` collated batches of ``batch_size`` scenes from one split."""
    if batch_size < 1 or count < 1:
        raise UserError(
            f"bevfusion_mini {split}: batch_size and batch counts must be >= 1"
        )
    dataset = DATASETS.build(
        {
            "type": "SyntheticScenes",
            "split": split,
            "num_scenes": batch_size * count,
            "seed": seed,
        }
    )
    return batches(dataset, batch_size, count)


@register_problem("bevfusion_mini")
def bevfusion_mini_problem(
    batch_size: int = 4,
    calibration_batches: int = 2,
    fitness_batches: int = 4,
    seed: int = 0,
    weights: str = str(WEIGHTS),
    ref_score: float = 0.3,
    max_distance: float = 2.0,
    center_weight: float = 0.5,
    validation_batches: int = 4,
) -> Problem:
    """``center_weight`` is F_box's a; ``seed`` picks the scene streams, not the weights.

    ``validation_batches`` (0: none) are drawn from the held-out ``test`` split.
    """
    if validation_batches < 0:
        raise UserError("bevfusion_mini: validation_batches must be 0 or more")
    validation = (
        scene_batches("test", batch_size, validation_batches, seed)
        if validation_batches
        else []
    )
    return Problem(
        name="bevfusion_mini",
        build_model=partial(load_model, weights),
        calibration_batches=scene_batches(
            "calibration", batch_size, calibration_batches, seed
        ),
        fitness_batches=scene_batches("fitness", batch_size, fitness_batches, seed),
        run=run_detector,
        task_metric=DetectionMetric(len(CLASSES), [BARRIER], [BARRIER]),
        error_metrics=BoxErrors(ref_score, max_distance, center_weight),
        export_parts=EXPORT_PARTS,
        validation_batches=validation,
        discover_attention=False,  # the thesis's 108 layers: the head's MHA stays FP32
    )
