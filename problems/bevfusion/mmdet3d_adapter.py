"""``bevfusion_mmdet3d``: mmdet3d's BEVFusion (``projects/BEVFusion``) on nuScenes.

Written against mmdetection3d ``fe25f7a`` (``projects/BEVFusion``, v1.4), mmdet 3.3 and
mmengine 0.10; docs/bevfusion.md says how to install them. None of them is imported
until a problem is built, so evoquant and its tests run without them.

Everything goes through mmengine, as mmdet3d's own tools do: ``Config.fromfile`` (which
imports the config's ``custom_imports``, i.e. ``projects.BEVFusion.bevfusion``), the
registries under the config's ``default_scope``, ``load_checkpoint`` and
``Runner.build_dataloader`` for the config's test (or val) dataloader. Calibration,
fitness and validation are three disjoint sets of that dataset's sample indices.
Predictions come from ``model.test_step(batch)``, so F_box, the nuScenes-style mAP /
NDS and the export share the testbed's code (``problems/bevfusion/detection.py``).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from fitness.bbox import detection_scores
from problems.base import Problem
from problems.bevfusion.detection import BOX_DIMS, BoxErrors, flatten, run_detector
from problems.bevfusion.layer_map import check_layer_map
from problems.bevfusion.mini.problem import EXPORT_PARTS
from problems.bevfusion.window_msa import route_window_attention
from problems.registry import register_problem

NAME = "bevfusion_mmdet3d"
ROLES = ("calibration", "fitness", "validation")
IndexSpec = str | list[int]
"""Sample indices of one role: ``"rest"`` (every index no other role takes), a slice
``"start:stop:step"`` with Python's rules (ends optional: ``"::300"``), or a list."""

SYMMETRIC_CLASSES = ("barrier",)
"""nuScenes scores the yaw of barriers modulo pi."""
STATIC_CLASSES = ("barrier", "traffic_cone")
"""nuScenes does not score the velocity of barriers and cones."""


def _arg(role: str) -> str:
    return f"problem.args.{role}"


def _slice(spec: str, size: int, role: str) -> list[int]:
    parts = spec.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        bounds = [int(part) if part.strip() else None for part in parts]
        return list(range(size))[slice(*bounds)]
    except ValueError:
        raise UserError(
            f"{_arg(role)} {spec!r} is not 'rest', 'start:stop:step' or a list of "
            "sample indices"
        ) from None


def _indices(spec: IndexSpec, size: int, role: str) -> list[int]:
    if isinstance(spec, str):
        return _slice(spec, size, role)
    outside = [i for i in spec if not 0 <= i < size]
    if outside:
        raise UserError(
            f"{_arg(role)}: index {outside[0]} is not one of the dataset's {size} "
            f"samples (0..{size - 1})"
        )
    twice = sorted({i for i in spec if spec.count(i) > 1})
    if twice:
        raise UserError(f"{_arg(role)} lists sample {twice[0]} more than once")
    return list(spec)


def split_samples(
    specs: Mapping[str, IndexSpec], size: int
) -> dict[str, tuple[int, ...]]:
    """Each role's sample indices; overlapping roles are refused in one line.

    A sample in two roles would hide what quantization does on unseen data (the
    ranges would be taken from the very samples the error is measured on).
    Calibration and fitness must not be empty; validation may be.
    """
    rest = [role for role, spec in specs.items() if spec == "rest"]
    if len(rest) > 1:
        raise UserError(f"only one of {', '.join(map(_arg, rest))} may be 'rest'")
    chosen = {
        role: _indices(spec, size, role)
        for role, spec in specs.items()
        if spec != "rest"
    }
    taken = {i for indices in chosen.values() for i in indices}
    for role in rest:
        chosen[role] = [i for i in range(size) if i not in taken]
    for first, second in combinations(specs, 2):
        shared = sorted(set(chosen[first]) & set(chosen[second]))
        if shared:
            examples = ", ".join(map(str, shared[:3]))
            raise UserError(
                f"{_arg(first)} and {_arg(second)} share {len(shared)} sample(s) "
                f"(e.g. {examples}): {', '.join(ROLES)} samples must be disjoint"
            )
    for role in ("calibration", "fitness"):
        if role in chosen and not chosen[role]:
            raise UserError(
                f"{_arg(role)} selects none of the dataset's {size} samples"
            )
    return {role: tuple(chosen[role]) for role in specs}


@dataclass
class SampleSource:
    """The dataset and collate function of one dataloader of an mmengine config."""

    dataset: Any
    collate: Callable[[list], dict]
    cfg: Any
    """The mmengine ``Config`` (its evaluator reports on these samples)."""
    dataloader: str

    def batch(self, indices: Sequence[int]) -> dict:
        """Samples ``indices`` through the dataset's pipeline, collated."""
        return self.collate([self.dataset[i] for i in indices])

    def batches(self, indices: Sequence[int], batch_size: int) -> list[dict]:
        """Loaded now and kept: what calibration and every fitness evaluation reuse."""
        return [self.batch(chunk) for chunk in _chunks(indices, batch_size)]

    def pending(self, indices: Sequence[int], batch_size: int) -> list[PendingBatch]:
        """Loaded only when run: a validation set may be most of nuScenes val."""
        return [PendingBatch(self, chunk) for chunk in _chunks(indices, batch_size)]


def _chunks(indices: Sequence[int], size: int) -> list[tuple[int, ...]]:
    if size < 1:
        raise UserError(f"{_arg('batch_size')} must be >= 1, got {size}")
    return [tuple(indices[i : i + size]) for i in range(0, len(indices), size)]


class PendingBatch(dict):
    """A batch held as sample indices and loaded by ``run`` (``Problem.run``).

    Building the problem, which every Ray worker does, then neither loads nor holds
    thousands of validation samples. Its one tensor is the sample indices, so
    evoquant's sample fingerprints (``problems.base.sample_fingerprints``: the
    overlap check, the count and digest of ``evoquant validate``) identify the
    samples without loading them. The ground truth of the last load is kept (a few
    boxes per sample) for the task metric.
    """

    def __init__(self, source: SampleSource, indices: Sequence[int]) -> None:
        super().__init__(sample_indices=torch.tensor(indices, dtype=torch.int64))
        self.source = source
        self.indices = tuple(indices)
        self._truth: list[dict[str, Tensor]] | None = None

    def load(self) -> dict:
        batch = self.source.batch(self.indices)
        self._truth = ground_truth(batch)
        return batch

    def ground_truth(self) -> list[dict[str, Tensor]]:
        if self._truth is None:
            self.load()
        return self._truth

    def __repr__(self) -> str:
        return f"PendingBatch(samples={list(self.indices)})"


def _box_tensor(boxes: Any) -> Tensor:
    """mmdet3d boxes (or a tensor / array) as N x 9 float (no velocity: zeros)."""
    tensor = torch.as_tensor(getattr(boxes, "tensor", boxes)).detach().float().cpu()
    tensor = tensor.reshape(len(tensor), -1)[:, :BOX_DIMS]
    return torch.nn.functional.pad(tensor, (0, BOX_DIMS - tensor.shape[1]))


def ground_truth(batch: dict) -> list[dict[str, Tensor]]:
    """Per-sample ground truth of a collated batch.

    In test mode mmdet3d's datasets put the boxes in ``eval_ann_info``
    (``gt_bboxes_3d``, ``gt_labels_3d``), in training mode in ``gt_instances_3d``.
    """
    truth = []
    for sample in batch["data_samples"]:
        annotations = getattr(sample, "eval_ann_info", None)
        if annotations is not None:
            boxes, labels = annotations["gt_bboxes_3d"], annotations["gt_labels_3d"]
        else:
            boxes = sample.gt_instances_3d.bboxes_3d
            labels = sample.gt_instances_3d.labels_3d
        truth.append(
            {
                "bboxes_3d": _box_tensor(boxes),
                "labels_3d": torch.as_tensor(labels).long().reshape(-1).cpu(),
            }
        )
    return truth


def load_batch(batch: dict | PendingBatch) -> dict:
    return batch.load() if isinstance(batch, PendingBatch) else batch


def run_batch(model: nn.Module, batch: dict | PendingBatch) -> list[dict[str, Tensor]]:
    """``Problem.run``: ``test_step`` predictions, a pending batch loaded first."""
    return run_detector(model, load_batch(batch))


class NuScenesStyleMetric:
    """``Problem.task_metric``: evoquant's nuScenes-style mAP / NDS (fitness/bbox.py).

    An approximation for following the search: no class distance ranges and no
    attributes, and cones' yaw is scored. The nuScenes devkit's own figures come
    from ``python -m problems.bevfusion.mmdet3d_report`` (NuScenesMetric).
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)

    def __call__(self, outputs: Sequence, batches: Sequence) -> dict[str, float]:
        truth = [
            gt
            for batch in batches
            for gt in (
                batch.ground_truth()
                if isinstance(batch, PendingBatch)
                else ground_truth(batch)
            )
        ]
        scores = detection_scores(
            flatten(outputs),
            truth,
            len(self.classes),
            [i for i, c in enumerate(self.classes) if c in SYMMETRIC_CLASSES],
            [i for i, c in enumerate(self.classes) if c in STATIC_CLASSES],
        )
        return {"mAP": scores["mAP"], "NDS": scores["NDS"]}


def require_mmdet3d() -> None:
    """One line naming what is missing, before anything else is tried."""
    for package in ("mmcv", "mmdet", "mmdet3d"):
        try:
            __import__(package)
        except ImportError as error:
            raise UserError(
                f"{NAME} needs {package} ({error}): install mmcv with its CUDA "
                "operators, mmdet and mmdet3d, then pip install -e '.[bevfusion]' "
                "(docs/bevfusion.md)"
            ) from None


def read_config(
    path: str,
    cfg_options: Mapping[str, Any] | None = None,
    mmdet3d_root: str | None = None,
) -> Any:
    """The mmengine ``Config`` with ``cfg_options`` merged and its default scope set.

    ``mmdet3d_root`` (an mmdetection3d source checkout) goes on ``sys.path`` so that
    the config's ``custom_imports`` find ``projects.BEVFusion.bevfusion``.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    if mmdet3d_root is not None:
        root = Path(mmdet3d_root)
        if not (root / "projects").is_dir():
            raise UserError(
                f"{_arg('mmdet3d_root')} {root} is not an mmdetection3d source "
                "checkout (it has no projects/ folder)"
            )
        if str(root.resolve()) not in sys.path:
            sys.path.insert(0, str(root.resolve()))
    if not Path(path).is_file():
        raise UserError(f"mmdet3d config not found: {path}")
    try:
        cfg = Config.fromfile(path)
    except ImportError as error:
        raise UserError(
            f"{path}: its custom_imports fail ({error}): run from an mmdetection3d "
            f"source checkout or set {_arg('mmdet3d_root')}"
        ) from None
    except (SyntaxError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"cannot read mmdet3d config {path}: {error}") from None
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    init_default_scope(cfg.get("default_scope", "mmdet3d"))
    return cfg


def open_samples(cfg: Any, dataloader: str = "test_dataloader") -> SampleSource:
    """The dataset of ``cfg[dataloader]``, built by ``Runner.build_dataloader``."""
    from mmengine.runner import Runner

    if dataloader not in ("test_dataloader", "val_dataloader"):
        raise UserError(
            f"{_arg('dataloader')} {dataloader!r}: use test_dataloader or "
            "val_dataloader"
        )
    if cfg.get(dataloader) is None:
        raise UserError(f"the mmdet3d config has no {dataloader}")
    try:
        loader = Runner.build_dataloader(cfg[dataloader])
    except (FileNotFoundError, KeyError) as error:
        raise UserError(f"cannot build the config's {dataloader}: {error}") from None
    return SampleSource(loader.dataset, loader.collate_fn, cfg, dataloader)


@dataclass(frozen=True)
class DetectorSpec:
    """What builds the FP32 detector in every process (``Problem.build_model``).

    ``window_msa`` is the attention class whose products become layers (default
    mmdet's ``WindowMSA``); ``layer_map`` is checked on the result
    (``problems/bevfusion/layer_map.py``).
    """

    cfg: Any
    checkpoint: str
    device: str = "cuda"
    layer_map: str = "strict"
    window_msa: type[nn.Module] | None = None

    def __call__(self) -> nn.Module:
        from mmengine.registry import MODELS
        from mmengine.runner import load_checkpoint

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(
                f"{NAME} runs on {self.device} but torch sees no CUDA GPU "
                "(mmdet3d's BEV pooling and sparse convolutions have CUDA kernels only)"
            )
        if not Path(self.checkpoint).is_file():
            raise UserError(f"checkpoint not found: {self.checkpoint}")
        model_cfg = copy.deepcopy(self.cfg.model)  # BEVFusion pops keys from it
        if model_cfg.get("img_backbone") is not None:
            # the checkpoint holds the backbone: no pretrained download at build time
            model_cfg["img_backbone"].pop("init_cfg", None)
        model = MODELS.build(model_cfg)
        try:
            load_checkpoint(model, self.checkpoint, map_location="cpu", strict=True)
        except (RuntimeError, KeyError) as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            detail = "; ".join(lines[1:] or lines) or type(error).__name__
            raise UserError(
                f"checkpoint {self.checkpoint} does not fit the config's model: "
                f"{detail[:300]}"
            ) from None
        route_window_attention(model, self.window_msa)
        check_layer_map(find_layers(model), self.layer_map)
        return model.to(self.device).eval()


def detector_problem(
    detector: DetectorSpec,
    source: SampleSource,
    samples: Mapping[str, Sequence[int]],
    batch_size: int,
    box_errors: BoxErrors,
) -> Problem:
    """The problem on ``source``'s samples: calibration and fitness loaded, validation
    pending."""
    classes = source.dataset.metainfo["classes"]
    return Problem(
        name=NAME,
        build_model=detector,
        calibration_batches=source.batches(samples["calibration"], batch_size),
        fitness_batches=source.batches(samples["fitness"], batch_size),
        validation_batches=source.pending(samples["validation"], batch_size),
        run=run_batch,
        task_metric=NuScenesStyleMetric(classes),
        error_metrics=box_errors,
        export_parts=EXPORT_PARTS,
        discover_attention=False,  # the thesis's 108 layers: the head's MHA stays FP32
        compilable=False,  # its parts' CUDA ops (BEV pooling, sparse conv) never traced
    )


def problem_samples(
    config: str,
    specs: Mapping[str, IndexSpec],
    cfg_options: Mapping[str, Any] | None = None,
    mmdet3d_root: str | None = None,
    dataloader: str = "test_dataloader",
) -> tuple[SampleSource, dict[str, tuple[int, ...]]]:
    """The config's dataset and each role's sample indices (the factory's first half,
    which the nuScenes report repeats to reach the same samples)."""
    source = open_samples(read_config(config, cfg_options, mmdet3d_root), dataloader)
    return source, split_samples(specs, len(source.dataset))


@register_problem(NAME)
def bevfusion_mmdet3d_problem(
    config: str,
    checkpoint: str,
    mmdet3d_root: str | None = None,
    cfg_options: dict[str, Any] | None = None,
    dataloader: str = "test_dataloader",
    calibration: IndexSpec = "0::300",
    fitness: IndexSpec = "150::300",
    validation: IndexSpec = "75::150",
    batch_size: int = 1,
    device: str = "cuda",
    layer_map: str = "strict",
    ref_score: float = 0.3,
    max_distance: float = 2.0,
    center_weight: float = 0.5,
) -> Problem:
    """mmdet3d's BEVFusion from ``config`` + ``checkpoint``, scored on its dataset.

    The default samples of nuScenes val (6019): calibration every 300th from 0 (21),
    fitness every 300th from 150 (20), validation every 150th from 75 (40), which
    ``evoquant validate`` scores for each front point after the search; the nuScenes
    report can use every other sample. ``cfg_options`` are merged into the config as
    mmdet3d's ``--cfg-options`` are (e.g. a ``data_root``). ``ref_score``,
    ``max_distance`` and ``center_weight`` (a) define F_box (docs/fbox.md).
    """
    require_mmdet3d()
    source, samples = problem_samples(
        config,
        {"calibration": calibration, "fitness": fitness, "validation": validation},
        cfg_options,
        mmdet3d_root,
        dataloader,
    )
    return detector_problem(
        DetectorSpec(source.cfg, checkpoint, device, layer_map),
        source,
        samples,
        batch_size,
        BoxErrors(ref_score, max_distance, center_weight),
    )
