"""The digits problem, whose outputs are NaN whenever its head (``fc``) is at 2 bits.

Named in configs as ``nan_digits:nan_digits`` (and ``nan_digits:all_nan_digits``, where
every genome fails); the tests put this folder on the path.
Calibration runs in FP32, so only the genomes with a 2-bit head measure NaN.
"""

from __future__ import annotations

from torch import Tensor, nn

from evoquant.api import Problem
from problems.cnn.digits import digits_problem

TWO_BIT_LEVELS = 4
"""A 2-bit per-channel weight row takes at most 4 distinct values."""


def nan_digits(**digits_args) -> Problem:
    problem = digits_problem(**digits_args)
    run = problem.run

    def nan_run(model: nn.Module, batch) -> Tensor:
        logits = run(model, batch)
        if model.fc.weight[0].unique().numel() <= TWO_BIT_LEVELS:
            return logits * float("nan")
        return logits

    problem.run = nan_run
    return problem


def all_nan_digits(**digits_args) -> Problem:
    """Digits whose outputs are NaN under any quantized head: every genome fails."""
    problem = digits_problem(**digits_args)
    run = problem.run
    fp32_head: dict[str, Tensor] = {}

    def nan_run(model: nn.Module, batch) -> Tensor:
        head = fp32_head.setdefault("weight", model.fc.weight)  # the first run is FP32
        logits = run(model, batch)
        return logits if model.fc.weight is head else logits * float("nan")

    problem.run = nan_run
    return problem
