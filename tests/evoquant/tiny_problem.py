"""A four-layer problem with one 4-sample batch per role, for the driver and pipeline tests.

Named in configs as ``tiny_problem:tiny_problem``; the tests put this folder on the path
(an import path, not a registered name, so the registry's list of names stays as it is
for the other tests).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from evoquant.api import Problem

NAME = "tiny_problem:tiny_problem"
LAYERS = ["stem", "body.0", "body.2", "head"]


def make_model() -> nn.Module:
    """Left in training mode: whoever builds it must put it in eval mode."""
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            stem=nn.Conv2d(1, 4, 3, padding=1),
            act=nn.ReLU(),
            body=nn.Sequential(
                nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1)
            ),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            head=nn.Linear(4, 3),
        )
    )


def run(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model(batch)


def tiny_problem(exclude: list[str] | None = None, seed: int = 1) -> Problem:
    """``exclude``: the problem's own layer patterns; ``seed``: which random samples."""
    generator = torch.Generator().manual_seed(seed)
    return Problem(
        name="tiny",
        build_model=make_model,
        calibration_batches=[torch.randn(4, 1, 6, 6, generator=generator)],
        fitness_batches=[torch.randn(4, 1, 6, 6, generator=generator)],
        run=run,
        layer_exclude=tuple(exclude or ()),
    )
