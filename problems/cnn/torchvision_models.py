"""Any torchvision classifier, with the user's weights and an ImageFolder of images.

Without ``data_path`` the problem runs on seeded Gaussian images labelled by the FP32
model itself: a smoke-test and benchmark mode that needs no dataset, where top-1 only
measures agreement with FP32.
"""

from __future__ import annotations

import logging
import pickle
from functools import partial
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from evoquant.errors import UserError
from fitness.classification import run_classifier, top1_metric
from problems.base import Problem
from problems.registry import register_problem

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def classification_models() -> list[str]:
    """Torchvision's image classifiers (no detection, segmentation or video)."""
    from torchvision import models

    return models.list_models(module=models)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state_dict from ``.safetensors`` or ``torch.save``, never unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, weights_only=True, map_location="cpu")
    except (
        pickle.UnpicklingError,
        SafetensorError,
        RuntimeError,
        EOFError,
        OSError,
    ) as exc:
        first_line = str(exc).strip().partition("\n")[0] or type(exc).__name__
        raise UserError(f"cannot read weights file {path}: {first_line}") from exc
    if not isinstance(state, dict) or not all(
        isinstance(v, Tensor) for v in state.values()
    ):
        raise UserError(f"weights file {path} does not hold a state_dict of tensors")
    return state


def load_weights(model: nn.Module, name: str, path: str | Path) -> None:
    """``load_state_dict``, any mismatch summarised on one line, not a traceback."""
    state = load_state_dict_file(path)
    expected = model.state_dict()
    problems = {
        "missing keys": [k for k in expected if k not in state],
        "unexpected keys": [k for k in state if k not in expected],
        "shape mismatches": [
            k for k in expected if k in state and state[k].shape != expected[k].shape
        ],
    }
    details = "; ".join(
        f"{len(keys)} {what} (e.g. {keys[0]})"
        for what, keys in problems.items()
        if keys
    )
    if details:
        raise UserError(f"weights file {path} does not match {name}: {details}")
    model.load_state_dict(state)


def build_torchvision_model(
    name: str, weights: str | None, num_classes: int, seed: int
) -> nn.Module:
    """The FP32 model in eval mode.

    Initialised under ``seed``: without weights, every process builds the same one.
    """
    from torchvision import models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.get_model(name, weights=None, num_classes=num_classes)
    if weights is not None:
        load_weights(model, name, weights)
    return model.eval()


def _split(
    images: Tensor, labels: Tensor, batch_size: int, counts: tuple[int, int, int]
) -> tuple[list, list, list]:
    """``(images, labels)`` batches cut into calibration, fitness and validation, in turn."""
    batches = list(zip(images.split(batch_size), labels.split(batch_size)))
    calibration, fitness, _ = counts
    return (
        batches[:calibration],
        batches[calibration : calibration + fitness],
        batches[calibration + fitness :],
    )


def folder_images(
    data_path: str, image_size: int, count: int, seed: int
) -> tuple[Tensor, Tensor]:
    """``count`` seeded-random images of an ImageFolder, ImageNet eval transforms.

    Labels are ImageFolder's indices of the sorted class folders, which is the ImageNet
    class order when the folders are the synset ids.
    """
    from torchvision import datasets, transforms

    root = Path(data_path)
    if not root.is_dir():
        raise UserError(f"data folder not found: {root}")
    transform = transforms.Compose(
        [
            transforms.Resize(round(image_size * 256 / 224)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    try:
        dataset = datasets.ImageFolder(root, transform=transform)
    except FileNotFoundError as exc:
        raise UserError(f"data folder {root} is not an ImageFolder: {exc}") from exc
    if len(dataset) < count:
        raise UserError(
            f"data folder {root} has {len(dataset)} images, the batches need {count} "
            "(calibration, fitness and validation batches never share an image)"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator)[:count]
    images, labels = [], []
    for index in order.tolist():
        try:
            image, label = dataset[index]
        except OSError as exc:
            raise UserError(
                f"cannot read image {dataset.samples[index][0]}: {exc}"
            ) from exc
        images.append(image)
        labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def random_images(
    model: nn.Module, image_size: int, count: int, batch_size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Seeded Gaussian images (as if normalised), labelled by the FP32 argmax."""
    images = torch.randn(
        count, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        labels = torch.cat(
            [model(batch).argmax(dim=-1) for batch in images.split(batch_size)]
        )
    return images, labels


@register_problem("torchvision")
def torchvision_problem(
    model: str,
    weights: str | None = None,
    data_path: str | None = None,
    image_size: int = 224,
    batch_size: int = 8,
    calibration_batches: int = 4,
    fitness_batches: int = 4,
    seed: int = 0,
    num_classes: int = 1000,
    validation_batches: int = 4,
) -> Problem:
    """A torchvision classifier scored by top-1 on ``data_path`` (or random images).

    The seeded draw of images is cut into calibration, fitness and validation batches,
    in that order, so no image plays two roles; ``validation_batches`` may be 0.
    """
    if model.lower() not in classification_models():
        raise UserError(
            f"{model!r} is not a torchvision classification model "
            "(e.g. resnet18, resnet50, mobilenet_v2)"
        )
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"weights file not found: {weights}")
    if batch_size < 1 or calibration_batches < 1 or fitness_batches < 1:
        raise UserError(
            "batch_size, calibration_batches and fitness_batches must be at least 1"
        )
    if validation_batches < 0:
        raise UserError("validation_batches must be 0 or more")
    build = partial(build_torchvision_model, model, weights, num_classes, seed)
    counts = (calibration_batches, fitness_batches, validation_batches)
    count = batch_size * sum(counts)
    if data_path is None:
        logger.warning(
            "torchvision problem without data_path: random images labelled by "
            "the FP32 model, for smoke tests and benchmarks only "
            "(top-1 is agreement with FP32)"
        )
        images, labels = random_images(build(), image_size, count, batch_size, seed)
    else:
        images, labels = folder_images(data_path, image_size, count, seed)
    calibration, fitness, validation = _split(images, labels, batch_size, counts)
    return Problem(
        name=f"torchvision-{model}",
        build_model=build,
        calibration_batches=calibration,
        fitness_batches=fitness,
        run=run_classifier,
        task_metric=top1_metric,
        validation_batches=validation,
    )
