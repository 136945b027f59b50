"""The Pareto front of evaluated genomes, its knee, and its files in the run dir.

A *point* is a plain dict: ``bits`` (per-layer weight bits, genome order)
plus metric floats (``f_bits``, ``relative_cost``, ``error``, ...). A run's front is
the *archive front*: the non-dominated set of every successful genome evaluated up to
a generation, not only of the genomes that survived into its population.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from evoquant.archive import FAILED
from evoquant.atomic import write_text_atomic
from evoquant.rundir import FRONT_CSV, FRONT_JSON

Point = Mapping[str, Any]
Archived = dict[tuple[int, ...], tuple[int, dict[str, Any]]]
"""genome -> (the generation it was first evaluated in, its point)."""
OBJECTIVES = ("f_bits", "error")

COST_METRICS = frozenset(
    {"f_bits", "relative_cost", "compression", "avg_weight_bits", "megabytes"}
)
FITNESS_DATA = "fitness batches"
HELDOUT_ERROR = "heldout_error"
"""The error objective measured on the validation batches (``validation.json``)."""
VALIDATION_DATA = "validation batches"
FRONT_MEANING = (
    "non-dominated among every successful genome evaluated up to this generation"
)


def measured_on(metric: str) -> str | None:
    """The data a metric column was measured on, so reports can say so.

    Bit costs need no data (None); the held-out error is computed on the validation
    batches, every other metric (errors, task metrics) on the fitness batches. The one
    place that names a column's data.
    """
    if metric == HELDOUT_ERROR:
        return VALIDATION_DATA
    return None if metric in COST_METRICS else FITNESS_DATA


def with_heldout(
    point: Mapping[str, Any], heldout: Mapping[tuple[int, ...], float]
) -> dict[str, Any]:
    """``point`` with its held-out error beside its error, when it has one."""
    value = heldout.get(tuple(point["bits"]))
    if value is None:
        return dict(point)
    out: dict[str, Any] = {}
    for key, item in point.items():
        out[key] = item
        if key == "error":
            out[HELDOUT_ERROR] = value
    out.setdefault(HELDOUT_ERROR, value)
    return out


def column_label(metric: str, name: str | None = None) -> str:
    """``error (fitness batches)``: a column's name (the metric's by default) and its data."""
    name = metric if name is None else name
    data = measured_on(metric)
    return name if data is None else f"{name} ({data})"


def objective_matrix(points: Sequence[Point], objectives: Sequence[str]) -> np.ndarray:
    """Objective values as an ``(n, k)`` float array, the form pymoo works on."""
    missing = {o for p in points for o in objectives if o not in p}
    if missing:
        raise ValueError(f"points lack objective(s) {sorted(missing)}")
    return np.array(
        [[float(p[o]) for o in objectives] for p in points], dtype=float
    ).reshape(len(points), len(objectives))


def pareto_front(
    points: Sequence[Point], objectives: Sequence[str] = OBJECTIVES
) -> list[dict[str, object]]:
    """Non-dominated points, one per objective vector, sorted by cost (first objective).

    Points with identical objective values are the same trade-off (usually the
    same genome met twice), so only the first one seen is kept. A point with a
    non-finite objective measured nothing and is never on a front.
    """
    if not points:
        return []
    F_all = objective_matrix(points, objectives)
    first: dict[tuple[float, ...], int] = {}
    for i, row in enumerate(F_all):
        if np.isfinite(row).all():
            first.setdefault(tuple(row), i)
    if not first:
        return []
    keep = np.array(list(first.values()))
    F = F_all[keep]
    idx = NonDominatedSorting().do(F, only_non_dominated_front=True)
    idx = sorted(idx, key=lambda i: tuple(F[i]))
    return [dict(points[keep[i]]) for i in idx]


def archived_points(records: Iterable[Mapping[str, Any]]) -> Archived:
    """``Archive.records()`` as ``genome -> (generation, point)``; failures carry ``failed``."""
    return {
        tuple(r["genome"]): (
            r["generation"],
            {"bits": list(r["genome"])} | r["metrics"],
        )
        for r in records
    }


def successful(
    archived: Archived, genomes: Iterable[Sequence[int]], generation: float = math.inf
) -> list[dict[str, Any]]:
    """The points of those ``genomes`` that succeeded and were evaluated by ``generation``."""
    points = []
    for genome in dict.fromkeys(tuple(g) for g in genomes):
        entry = archived.get(genome)
        if entry is not None and entry[0] <= generation and FAILED not in entry[1]:
            points.append(entry[1])
    return points


class ArchiveFront:
    """The front of every successful genome archived up to a generation, kept as it grows.

    A genome counts from the generation it was first evaluated in, so the front of
    an old generation is what that generation's reports showed. Each step sorts only
    the previous front and the genomes new since, so walking a 50-generation run
    does not sort its whole archive 50 times.
    """

    def __init__(self, objectives: Sequence[str] = OBJECTIVES) -> None:
        self.objectives = tuple(objectives)
        self.generation = -1
        self.front: list[dict[str, object]] = []

    def at(self, archived: Archived, generation: int) -> list[dict[str, object]]:
        """The front as of ``generation``; going back in time starts again from nothing."""
        if generation < self.generation:
            self.generation, self.front = -1, []
        rows = sorted(archived.values(), key=lambda row: row[0])
        new = [
            point
            for g, point in rows
            if self.generation < g <= generation and FAILED not in point
        ]
        self.front = pareto_front([*self.front, *new], self.objectives)
        self.generation = generation
        return self.front


def knee_point(front: Sequence[Point], objectives: Sequence[str] = OBJECTIVES) -> Point:
    """The front's best-balanced trade-off, where giving up cost buys the most error.

    Both objectives are min-max normalised over the front; the knee is the
    interior point farthest from the straight line joining the two extreme
    points (cheapest and most expensive). Distance is signed, positive on the
    side of the ideal point, so a bulge of a concave stretch is never chosen
    (on a wholly concave front the point closest to the line wins). The
    extremes themselves are never the knee once there are 3 points; with 1-2
    points there is no interior: the lowest-error point is returned. Ties go
    to the cheaper point.
    """
    if len(objectives) != 2:
        raise ValueError(
            f"knee_point needs exactly 2 objectives, got {len(objectives)}"
        )
    if not front:
        raise ValueError("knee_point of an empty front")
    F = objective_matrix(front, objectives)
    if len(front) <= 2:
        return front[int(np.argmin(F[:, 1]))]
    span = F.max(axis=0) - F.min(axis=0)
    N = (F - F.min(axis=0)) / np.where(span > 0, span, 1.0)
    ends = [int(np.argmin(N[:, 0])), int(np.argmax(N[:, 0]))]
    a, b = N[ends[0]], N[ends[1]]
    direction = (b - a) / max(float(np.linalg.norm(b - a)), np.finfo(float).eps)
    rel = N - a
    # 2-D cross product: positive below the line (towards the ideal point (0, 0)).
    signed = rel[:, 0] * direction[1] - rel[:, 1] * direction[0]
    signed[ends] = -np.inf
    order = np.lexsort((F[:, 0], -signed))
    return front[int(order[0])]


def metric_names(points: Sequence[Point]) -> list[str]:
    """Every metric key of the points (all but ``bits``) in order of first appearance."""
    names: dict[str, None] = {}
    for p in points:
        names.update((k, None) for k in p if k != "bits")
    return list(names)


def _check_bits(points: Sequence[Point], layer_names: Sequence[str]) -> None:
    for i, p in enumerate(points):
        if len(p["bits"]) != len(layer_names):
            raise ValueError(
                f"point {i} has {len(p['bits'])} genes but there are {len(layer_names)} layers"
            )


def _plain(value: object) -> object:
    """numpy scalars that slipped in become the Python numbers json can write."""
    return value.item() if hasattr(value, "item") else value


def stored_configs(
    run_dir: str | os.PathLike[str], gene_names: Sequence[str]
) -> dict[tuple[int, ...], list[tuple[int, int]]]:
    """What each genome of the run dir's ``front.json`` resolved to, by genome (gene
    order): ``evoquant plot`` builds no search space and keeps these. Empty when the
    file is missing, unreadable or has no ``configs``."""
    try:
        points = json.loads((Path(run_dir) / FRONT_JSON).read_text())["points"]
        return {
            tuple(int(p["bits"][g]) for g in gene_names): [
                (int(w), int(a)) for w, a in p["configs"].values()
            ]
            for p in points
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_front(
    run_dir: str | os.PathLike[str],
    front: Sequence[Point],
    layer_names: Sequence[str],
    generation: int | None = None,
    configs: Sequence[Mapping[str, Sequence[int]]] | None = None,
) -> tuple[Path, Path]:
    """Write ``front.csv`` (metrics, then one bits column per gene) and ``front.json``.

    Both name the data each measured column comes from: CSV headers read
    ``error (fitness batches)``; ``front.json`` is ``{"generation", "front",
    "measured_on": {metric: data}, "points"}``, each point ``{metric: value, ...,
    "bits": {gene: bits}, "configs": {layer: [weight bits, activation bits]}}``, keyed
    by gene and layer names so it stays readable without the search space.
    ``configs`` (one mapping per point) is what each genome resolved to in the search;
    export deploys it as it is. Without it points have no ``configs``.
    """
    run_dir = Path(run_dir)
    _check_bits(front, layer_names)
    if configs is not None and len(configs) != len(front):
        raise ValueError(f"{len(configs)} configs for {len(front)} front points")
    metrics = metric_names(front)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*map(column_label, metrics), *layer_names])
    for p in front:
        writer.writerow(
            [*(_plain(p.get(m, "")) for m in metrics), *(int(b) for b in p["bits"])]
        )
    csv_path = write_text_atomic(run_dir / FRONT_CSV, buf.getvalue())

    points = [
        {
            **{m: _plain(p[m]) for m in metrics if m in p},
            "bits": {name: int(b) for name, b in zip(layer_names, p["bits"])},
        }
        for p in front
    ]
    for point, resolved in zip(points, configs or ()):
        point["configs"] = {
            layer: [int(b) for b in pair] for layer, pair in resolved.items()
        }
    measured = {m: measured_on(m) for m in metrics if measured_on(m) is not None}
    document = {
        "generation": generation,
        "front": FRONT_MEANING,
        "measured_on": measured,
        "points": points,
    }
    json_path = write_text_atomic(
        run_dir / FRONT_JSON, json.dumps(document, indent=2) + "\n"
    )
    return csv_path, json_path
