"""Hypervolume of a front in (relative_cost, error), the one number that says a run improves.

Values are only comparable under one reference point, so a run fixes it once
(`reference_point`, from the uniform configurations evaluated at the start)
and keeps it for every generation and for the resumed run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from pymoo.indicators.hv import HV

from evoquant.report.front import Point, objective_matrix

HV_OBJECTIVES = ("relative_cost", "error")
MARGIN = 1.1


NO_REFERENCE = "no uniform configuration has a positive error"
"""Why a run has no hypervolume (every uniform configuration failed, or is exact)."""


def reference_point(
    uniform_points: Sequence[Point], margin: float = MARGIN
) -> tuple[float, float] | None:
    """``(margin, margin * max uniform error)``: the run's fixed hypervolume reference.

    Relative cost is at most 1 (FP32), so ``margin`` bounds every genome; the
    worst uniform configuration (usually all-2) bounds the error of every
    sensible genome. Points beyond the reference add nothing to the volume.
    None when no uniform point has a positive error (``NO_REFERENCE``): then no
    volume is measured rather than one against an invented bound.
    """
    errors = [float(p["error"]) for p in uniform_points]
    if not errors or max(errors) <= 0:
        return None
    return margin, margin * max(errors)


def hypervolume(F: ArrayLike, ref_point: Sequence[float]) -> float:
    """Area dominated by the rows of ``F`` (minimised objectives) and bounded by ``ref_point``."""
    F = np.asarray(F, dtype=float).reshape(-1, len(ref_point))
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(ref_point, dtype=float)).do(F))


def points_hypervolume(points: Sequence[Point], ref_point: Sequence[float]) -> float:
    """`hypervolume` of report points, read on ``HV_OBJECTIVES``."""
    return hypervolume(objective_matrix(points, HV_OBJECTIVES), ref_point)
