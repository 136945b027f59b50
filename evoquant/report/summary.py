"""``summary.md``: the human-readable verdict of a run, front, knee and uniform baselines."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path

from evoquant.archive import FAILED
from evoquant.atomic import write_text_atomic
from evoquant.report.front import (
    FRONT_MEANING,
    HELDOUT_ERROR,
    Point,
    column_label,
    metric_names,
)
from evoquant.rundir import SUMMARY_FILE

COST, ERROR, AVG_BITS = "relative_cost", "error", "avg_weight_bits"
NO_FRONT = "No genome has been measured yet: every evaluation so far failed."
MAIN_COLUMNS = {COST: "relative cost", AVG_BITS: "avg weight bits", ERROR: "error"}


def _fmt(value: object) -> str:
    is_real = isinstance(value, Real) and not isinstance(value, Integral)
    text = f"{value:.4g}" if is_real else str(value)
    return text.replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines


def compact_bits(bits: Sequence[int]) -> str:
    """A genome on one line, e.g. ``8-4-4-2``."""
    return "-".join(str(int(b)) for b in bits)


def _dominates(a: Point, b: Point) -> bool:
    worse_nowhere = a[COST] <= b[COST] and a[ERROR] <= b[ERROR]
    return worse_nowhere and (a[COST] < b[COST] or a[ERROR] < b[ERROR])


def _standing(front: Sequence[Point], point: Point) -> str:
    """Where a uniform configuration stands against the front (docs/method.md, acceptance)."""
    if any(_dominates(q, point) for q in front):
        return "dominated"
    if any(q[COST] == point[COST] and q[ERROR] == point[ERROR] for q in front):
        return "on the front"
    return "not dominated"


def _nearest(front: Sequence[Point], point: Point) -> int:
    """Front index closest in relative cost (the same memory budget); ties to lower error."""
    return min(
        range(len(front)),
        key=lambda i: (abs(front[i][COST] - point[COST]), front[i][ERROR]),
    )


def _main_columns(points: Sequence[Point]) -> dict[str, str]:
    """The main columns, with the held-out error beside the error where it was measured."""
    if not any(HELDOUT_ERROR in p for p in points):
        return MAIN_COLUMNS
    return MAIN_COLUMNS | {HELDOUT_ERROR: "error"}


def _front_section(front: Sequence[Point], knee_index: int) -> list[str]:
    main = _main_columns(front)
    extra = [m for m in metric_names(front) if m not in main]
    header = ["#", *(column_label(m, name) for m, name in main.items())]
    header += map(column_label, extra)
    rows = [
        [
            f"{i} (knee)" if i == knee_index else str(i),
            *(p.get(m, "") for m in [*main, *extra]),
        ]
        for i, p in enumerate(front)
    ]
    title = f"## Archive front ({len(front)} points)"
    return [title, "", f"The front is {FRONT_MEANING}.", "", *_table(header, rows)]


def _uniform_section(
    front: Sequence[Point], uniform_points: Mapping[str, Point]
) -> list[str]:
    lines = ["## Uniform configurations vs the front", ""]
    measured = {k: u for k, u in uniform_points.items() if FAILED not in u}
    failed = [
        f"- {k} failed: {u[FAILED]}"
        for k, u in uniform_points.items()
        if k not in measured
    ]
    if not measured:
        return [*lines, "No uniform configuration was measured.", "", *failed]
    heldout = HELDOUT_ERROR in _main_columns([*front, *measured.values()])
    rows = []
    for label, u in sorted(measured.items(), key=lambda item: item[1][COST]):
        i = _nearest(front, u)
        row = [label, u[COST], u[ERROR], i, front[i][COST], front[i][ERROR]]
        if heldout:
            row[3:3] = [u.get(HELDOUT_ERROR, "")]
            row.append(front[i].get(HELDOUT_ERROR, ""))
        rows.append([*row, _standing(front, u)])
    header = [
        "config",
        "relative cost",
        column_label(ERROR),
        "nearest front #",
        "front relative cost",
        column_label(ERROR, "front error"),
        "vs front",
    ]
    if heldout:
        header[3:3] = [column_label(HELDOUT_ERROR, "error")]
        header[-1:-1] = [column_label(HELDOUT_ERROR, "front error")]
    note = "The nearest front point is the one with the closest relative cost."
    return [*lines, note, "", *_table(header, rows), *(["", *failed] if failed else [])]


def write_summary(
    run_dir: str | os.PathLike[str],
    front: Sequence[Point],
    knee: Point | None,
    uniform_points: Mapping[str, Point],
    layer_names: Sequence[str],
    info: Mapping[str, object],
) -> Path:
    """Write ``summary.md``; ``info`` (problem, generation, counts, hypervolume, ...) heads it.

    ``uniform_points`` maps each uniform configuration's label to its point; a failed
    one (its point holds ``failed``) is listed with its reason. ``knee`` is None only
    while the front is empty (no genome has been measured).
    """
    lines = ["# evoquant run summary", ""]
    lines += [f"- **{key}**: {_fmt(value)}" for key, value in info.items()]
    if knee is None:
        if front:
            raise ValueError("a front without a knee point")
        lines += ["", "## Archive front", "", NO_FRONT, ""]
        lines += [*_uniform_section(front, uniform_points), ""]
        return write_text_atomic(Path(run_dir) / SUMMARY_FILE, "\n".join(lines))
    if knee not in front:
        raise ValueError("the knee point is not a point of the front")
    if len(knee["bits"]) != len(layer_names):
        raise ValueError(
            f"knee has {len(knee['bits'])} genes but there are {len(layer_names)} layers"
        )
    k = list(front).index(knee)
    lines += ["", *_front_section(front, k), ""]
    lines += [
        "## Knee point",
        "",
        f"Front point #{k}: relative cost {_fmt(knee[COST])}, error {_fmt(knee[ERROR])}"
        + (
            f" ({column_label(HELDOUT_ERROR, 'error')}: {_fmt(knee[HELDOUT_ERROR])})."
            if HELDOUT_ERROR in knee
            else "."
        ),
        "",
        f"Bits: `{compact_bits(knee['bits'])}`",
        "",
    ]
    lines += [*_uniform_section(front, uniform_points), ""]
    layer_rows = [
        [i, name, int(b)] for i, (name, b) in enumerate(zip(layer_names, knee["bits"]))
    ]
    lines += [
        "## Knee genome per layer",
        "",
        *_table(["#", "layer", "bits"], layer_rows),
        "",
    ]
    return write_text_atomic(Path(run_dir) / SUMMARY_FILE, "\n".join(lines))
