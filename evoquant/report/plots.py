"""Per-generation plots (population over the archive front) and the hypervolume curve.

Figures are built with `matplotlib.figure.Figure` on an Agg canvas, never
through pyplot, so plotting touches no global state and works headless and
in worker threads.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evoquant.atomic import write_bytes_atomic
from evoquant.report.front import HELDOUT_ERROR, Point, column_label

X, Y = "relative_cost", "error"
LOG_DECADES = 2.0


def _use_log_y(errors: Sequence[float]) -> bool:
    """Log scale when all errors are positive and span more than ``LOG_DECADES`` decades.

    Errors from W2 to W16 easily span several decades; on a linear axis every
    point but W2 then sits on the x axis.
    """
    if not errors or min(errors) <= 0:
        return False
    return max(errors) / min(errors) > 10**LOG_DECADES


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return write_bytes_atomic(path, buf.getvalue())


def plot_generation(
    path: str | os.PathLike[str],
    gen: int,
    population_points: Sequence[Point],
    front_points: Sequence[Point],
    uniform_points: Mapping[str, Point],
) -> Path:
    """Scatter one generation's population in (relative cost, error) over the archive
    front as of that generation and the uniform baselines (label -> point)."""
    fig = Figure(figsize=(7, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(
        [p[X] for p in population_points],
        [p[Y] for p in population_points],
        s=14,
        color="tab:gray",
        alpha=0.6,
        label="population",
    )
    front = sorted(front_points, key=lambda p: (p[X], p[Y]))
    ax.step(
        [p[X] for p in front],
        [p[Y] for p in front],
        where="post",
        color="tab:red",
        marker="o",
        markersize=5,
        label="archive front",
    )
    if uniform_points:
        ax.scatter(
            [p[X] for p in uniform_points.values()],
            [p[Y] for p in uniform_points.values()],
            marker="s",
            s=40,
            color="tab:blue",
            zorder=3,
            label="uniform",
        )
    for label, p in uniform_points.items():
        ax.annotate(label, (p[X], p[Y]), xytext=(5, 5), textcoords="offset points")
    heldout = _plot_heldout(ax, front, uniform_points)
    everything = [*population_points, *front_points, *uniform_points.values()]
    errors = [float(p[Y]) for p in everything] + [y for _, y in heldout]
    if _use_log_y(errors):
        ax.set_yscale("log")
    ax.set_xlabel("relative weight bit cost (vs FP32)")
    ylabel = column_label(Y)
    if heldout:
        ylabel += f"; hollow: {column_label(HELDOUT_ERROR, 'error')}"
    ax.set_ylabel(ylabel)
    ax.set_title(f"generation {gen}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    return _save(fig, path)


def _plot_heldout(
    ax: Axes, front: Sequence[Point], uniform_points: Mapping[str, Point]
) -> list[tuple[float, float]]:
    """Hollow markers at the held-out error of the front and uniform points that have
    one, each joined to its search error; returns the points drawn."""
    drawn = []
    for points, color, marker, label in (
        (front, "tab:red", "o", "archive front, held-out"),
        (list(uniform_points.values()), "tab:blue", "s", "uniform, held-out"),
    ):
        held = [p for p in points if HELDOUT_ERROR in p]
        if not held:
            continue
        for p in held:
            ax.plot([p[X], p[X]], [p[Y], p[HELDOUT_ERROR]], color=color, lw=0.8, ls=":")
        ax.scatter(
            [p[X] for p in held],
            [p[HELDOUT_ERROR] for p in held],
            marker=marker,
            s=40,
            facecolors="none",
            edgecolors=color,
            zorder=3,
            label=label,
        )
        drawn += [(float(p[X]), float(p[HELDOUT_ERROR])) for p in held]
    return drawn


def plot_hypervolume(
    path: str | os.PathLike[str], hv_by_generation: Mapping[int, float]
) -> Path:
    """Hypervolume against generation: flat means the search has converged."""
    gens = sorted(hv_by_generation)
    fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(gens, [hv_by_generation[g] for g in gens], marker="o", markersize=3)
    ax.set_xlabel("generation")
    ax.set_ylabel(f"hypervolume (relative cost, {column_label(Y)})")
    ax.set_title("hypervolume by generation")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)
