"""Built-in offline problem: a small residual CNN on scikit-learn's 8x8 digits.

Everything ships with the installed packages, so a search, the tests and CI run with no
network and no user files: the dataset comes with scikit-learn and the trained weights
with this package (``weights/digits_cnn.safetensors``, trained once by
``python -m problems.cnn.train_digits``; its settings, seed and accuracy are in
``weights/digits_cnn.json``). Training is not repeated at run time: the same seed gives
different weights on different CPUs, and every run must quantize the same network.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from evoquant.errors import UserError
from fitness.classification import run_classifier, top1_metric
from problems.base import Problem
from problems.registry import register_problem
from problems.weights import load_trained

WEIGHTS = Path(__file__).parent / "weights" / "digits_cnn.safetensors"
"""The shipped FP32 weights (seed 0)."""

NUM_TRAIN = 1400
"""Samples in the training split; the remaining 397 of 1797 are held out."""

SPLIT_SEED = 0


class ResBlock(nn.Module):
    """Two 3x3 Conv-BN layers with an identity or 1x1 projection shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class DigitsNet(nn.Module):
    """Stem, three residual blocks (one stride 2), pooling, a two-layer classifier.

    8 Conv2d + 2 Linear, 159,264 weights. Small enough to train in well under a
    minute on a CPU, yet wide enough (32-64 channels, 288-576 weights per output
    channel) that, as in real CNNs, layers differ in sensitivity and per-channel
    2-bit weights are not dominated by a handful of taps.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()
        )
        self.layer1 = ResBlock(32, 32)
        self.layer2 = ResBlock(32, 64, stride=2)
        self.layer3 = ResBlock(64, 64)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = nn.Sequential(nn.Linear(64, 128), nn.ReLU())
        self.fc = nn.Linear(128, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.hidden(self.pool(x).flatten(1)))


def load_splits() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, held-out) splits: normalised N x 1 x 8 x 8 images, long labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits.target))
    images = torch.from_numpy(digits.images[order]).float().unsqueeze(1) / 16.0
    labels = torch.from_numpy(digits.target[order]).long()
    train = images[:NUM_TRAIN]
    images = (images - train.mean()) / train.std()
    train_split = (images[:NUM_TRAIN], labels[:NUM_TRAIN])
    return train_split, (images[NUM_TRAIN:], labels[NUM_TRAIN:])


def load_digits_net(weights: str | Path = WEIGHTS) -> DigitsNet:
    """The trained FP32 network in eval mode; a missing or corrupt file is a UserError."""
    return load_trained(DigitsNet(), weights, "digits", "problems.cnn.train_digits")


def _batches(
    data: tuple[Tensor, Tensor], batch_size: int, count: int, split: str, start: int = 0
) -> list[tuple[Tensor, Tensor]]:
    """``count`` consecutive batches of a split, from sample ``start`` on."""
    images, labels = data
    if batch_size < 1 or count < 1 or start + batch_size * count > len(labels):
        raise UserError(
            f"digits {split} split has {len(labels)} samples: "
            f"{count} batches of {batch_size} do not fit"
            + (f" after the {start} fitness samples" if start else "")
        )
    stop = start + batch_size * count
    return [
        (images[i : i + batch_size], labels[i : i + batch_size])
        for i in range(start, stop, batch_size)
    ]


def split_batches(
    batch_size: int,
    calibration_batches: int,
    fitness_batches: int,
    validation_batches: int | None,
) -> tuple[list, list, list]:
    """(calibration, fitness, validation) batches of the digits, never sharing a sample.

    Calibration comes from the training split (the shipped weights were trained on it,
    so it may); fitness takes the first held-out samples, validation the ones after
    them: ``validation_batches`` batches, or (None) every held-out sample the fitness
    batches leave (0 means no validation).
    """
    train, held_out = load_splits()
    fitness = _batches(held_out, batch_size, fitness_batches, "held-out")
    start = batch_size * fitness_batches
    if validation_batches is None:
        images, labels = held_out
        validation = list(
            zip(images[start:].split(batch_size), labels[start:].split(batch_size))
        )
        validation = [batch for batch in validation if len(batch[1])]
    elif validation_batches == 0:
        validation = []
    else:
        validation = _batches(
            held_out, batch_size, validation_batches, "held-out", start
        )
    calibration = _batches(train, batch_size, calibration_batches, "training")
    return calibration, fitness, validation


def digits_factory(
    name: str,
    load: Callable[[str | Path], nn.Module],
    shipped: Path,
    command: str,
    module: str,
) -> Callable[..., Problem]:
    """The problem factory of a network trained on the digits, registered as ``name``
    and importable as ``module:name_problem`` (the registry's lazy path to it).

    ``load(weights)`` builds the trained network from a weights file (``shipped``
    by default, written by ``python -m command``); every network on the digits
    shares the batches (``split_batches``) and the top-1 score.
    """

    def factory(
        batch_size: int = 64,
        calibration_batches: int = 4,
        fitness_batches: int = 4,
        weights: str | None = None,
        validation_batches: int | None = None,
    ) -> Problem:
        calibration, fitness, validation = split_batches(
            batch_size, calibration_batches, fitness_batches, validation_batches
        )
        return Problem(
            name=name,
            build_model=partial(load, shipped if weights is None else weights),
            calibration_batches=calibration,
            fitness_batches=fitness,
            run=run_classifier,
            task_metric=top1_metric,
            validation_batches=validation,
        )

    factory.__name__ = factory.__qualname__ = f"{name}_problem"
    factory.__module__ = module
    factory.__doc__ = f"""Calibrate on the training split, score fitness and validation
    (top-1) on two disjoint parts of the held-out split (``split_batches``; 141
    validation samples by default).

    ``weights``: a safetensors file of the network's weights (one that
    ``python -m {command} --out FILE`` wrote); the shipped ones by default.
    """
    return register_problem(name)(factory)


digits_problem = digits_factory(
    "digits", load_digits_net, WEIGHTS, "problems.cnn.train_digits", __name__
)
