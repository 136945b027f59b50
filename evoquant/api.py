"""What a problem author needs from evoquant, in one place.

``problems/`` and users' packages implement ``Problem`` against this module (and the
objective functions in ``fitness/``); the engine never imports them at load time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from evoquant.errors import UserError
from evoquant.problem import (
    BATCH_AXIS,
    Batch,
    ExportPart,
    Outputs,
    Problem,
    role_overlaps,
    sample_fingerprints,
)
from evoquant.quant.layers import Layer, find_layers
from evoquant.quant.matmul import QuantMatMul

__all__ = [
    "BATCH_AXIS",
    "Batch",
    "ExportPart",
    "Layer",
    "Outputs",
    "Problem",
    "QuantMatMul",
    "UserError",
    "find_layers",
    "register_problem",
    "role_overlaps",
    "sample_fingerprints",
]


def register_problem(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``factory(**args) -> Problem`` available to configs as ``name``.

    The registry belongs to the problems' side (``evoquant.problem.PROBLEM_REGISTRY``),
    reached by its import path so that this module imports nothing above the engine.
    """
    from evoquant.problem import PROBLEM_REGISTRY

    return importlib.import_module(PROBLEM_REGISTRY).register_problem(name)
