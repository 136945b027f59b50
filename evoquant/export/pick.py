"""Choosing the front point to deploy: ``knee``, ``min-error:BUDGET``, ``max-compression:ERROR``, ``index:N``.

BUDGET is a relative bit cost (``0.15`` = 15 % of the FP32 weight bits) or, with a
trailing ``b``, an average number of bits per weight (``4.5b``); ERROR bounds the run's
error objective (the ``error`` metric). ``min-error`` and ``max-compression`` take a
trailing ``:heldout`` to judge the held-out error (``heldout_error``, measured on the
validation batches by ``evoquant validate``) instead, among the points that have it.
Rules read the run's ``front.json``: its archive front, every successful genome of the
run that no other one dominates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

from evoquant.errors import UserError
from evoquant.report.front import HELDOUT_ERROR, knee_point
from evoquant.rundir import FRONT_JSON as FRONT_FILE

RULES = "knee, min-error:BUDGET[:heldout], max-compression:ERROR[:heldout] or index:N"

Point = Mapping[str, Any]


def load_front(run_dir: str | Path) -> list[dict[str, Any]]:
    """The points of the run's archive front; a run without one has no finished generation.

    ``front.json`` holds them under ``points``; one written before the file named its
    columns' data is the bare list of points.
    """
    path = Path(run_dir) / FRONT_FILE
    if not path.is_file():
        raise UserError(
            f"{run_dir} has no finished generation ({FRONT_FILE} is missing): "
            "run or resume the search first"
        )
    try:
        front = json.loads(path.read_text())
        if isinstance(front, dict):
            front = front.get("points")
        if not isinstance(front, list) or not all(
            isinstance(p, dict) and isinstance(p.get("bits"), dict) for p in front
        ):
            raise ValueError("expected a list of points with per-layer bits")
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is corrupt: {error}") from None
    if not front:
        raise UserError(f"{path} holds no front point")
    return front


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"pick rule: {what} {text!r} is not a number") from None


def _metric(point: Point, name: str) -> float:
    if name not in point:
        raise UserError(f"front points have no {name!r} metric to pick by")
    return float(point[name])


def _heldout(front: Sequence[Point], argument: str) -> tuple[list[int], str, str]:
    """The candidate indices, the error metric and the rule's own argument:
    ``X:heldout`` judges ``heldout_error`` among the points that were validated."""
    argument, _, suffix = argument.partition(":")
    if not suffix:
        return list(range(len(front))), "error", argument
    if suffix != "heldout":
        raise UserError(f"pick rule: {suffix!r} after {argument!r} is not 'heldout'")
    validated = [i for i, p in enumerate(front) if HELDOUT_ERROR in p]
    if not validated:
        raise UserError(
            f"no front point has a held-out error ({HELDOUT_ERROR}): run "
            "'evoquant validate RUN_DIR' first"
        )
    return validated, HELDOUT_ERROR, argument


def _within(
    front: Sequence[Point],
    candidates: Sequence[int],
    metric: str,
    limit: float,
    label: str,
    nearest: str,
) -> list[int]:
    """The candidates whose ``metric`` is at most ``limit``; none is a UserError that
    names the ``nearest`` point's value, so the user sees how far off the limit is."""
    within = [i for i in candidates if _metric(front[i], metric) <= limit]
    if not within:
        value = min(_metric(front[i], metric) for i in candidates)
        raise UserError(
            f"no front point has {label} <= {limit:g} ({nearest} has {value:.4g})"
        )
    return within


def _min_error(front: Sequence[Point], argument: str) -> int:
    candidates, error, budget = _heldout(front, argument)
    metric, label = "relative_cost", "relative cost"
    if budget.endswith("b"):
        metric, label, budget = (
            "avg_weight_bits",
            "average bits per weight",
            budget[:-1],
        )
    limit = _number(budget, "budget")
    within = _within(front, candidates, metric, limit, label, "the cheapest")
    return min(
        within, key=lambda i: (_metric(front[i], error), _metric(front[i], metric))
    )


def _max_compression(front: Sequence[Point], argument: str) -> int:
    candidates, error, bound = _heldout(front, argument)
    limit = _number(bound, "error bound")
    within = _within(front, candidates, error, limit, error, "the most accurate")
    return min(
        within, key=lambda i: (_metric(front[i], "f_bits"), _metric(front[i], error))
    )


def _index(front: Sequence[Point], text: str) -> int:
    if not text.isdigit() or int(text) >= len(front):
        raise UserError(
            f"pick rule index:{text}: the front has points 0..{len(front) - 1}"
        )
    return int(text)


def _check_finite(front: Sequence[Point], objectives: Sequence[str]) -> None:
    """A NaN point measured nothing; only a stale front file can still hold one."""
    for i, point in enumerate(front):
        for name in dict.fromkeys([*objectives, "error"]):
            value = point.get(name)
            if isinstance(value, Real) and not math.isfinite(value):
                raise UserError(
                    f"front point {i} has {name} {value}: {FRONT_FILE} predates the "
                    "check for failed genomes; redraw it with 'evoquant plot'"
                )


def pick(front: Sequence[Point], rule: str, objectives: Sequence[str]) -> int:
    """The index in ``front`` of the point ``rule`` chooses."""
    _check_finite(front, objectives)
    name, _, argument = rule.partition(":")
    if name == "knee" and not argument:
        if len(objectives) != 2:
            raise UserError(
                f"the knee needs two objectives, the run has {list(objectives)}"
            )
        knee = knee_point(front, objectives)
        return next(i for i, p in enumerate(front) if p is knee)
    choosers = {
        "min-error": _min_error,
        "max-compression": _max_compression,
        "index": _index,
    }
    if name not in choosers or not argument:
        raise UserError(f"unknown pick rule {rule!r}: use {RULES}")
    return choosers[name](front, argument)
