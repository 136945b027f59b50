"""The sensitivity report: ``sensitivity.json`` and a layers x widths heat map of the error increase.

Users read it on its own to see which layers are fragile: a dark cell is a layer that
costs much error at that width even when every other layer stays at the base width.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from evoquant.atomic import write_bytes_atomic, write_json_atomic
from evoquant.sensitivity import Sensitivity

SENSITIVITY_FILE = "sensitivity.json"
SENSITIVITY_PLOT = "sensitivity.png"
MEASURED_ON = "fitness batches"


def increase_matrix(model: Sensitivity) -> tuple[np.ndarray, list[int]]:
    """Genes x every width any gene takes: the error increase (NaN where a gene lacks the width)."""
    widths = sorted({bits for alphabet in model.alphabets for bits in alphabet})
    matrix = np.full((len(model.genes), len(widths)), np.nan)
    for gene, alphabet in enumerate(model.alphabets):
        for level, bits in enumerate(alphabet):
            matrix[gene, widths.index(bits)] = model.error_increase[gene, level]
    return matrix, widths


def plot_sensitivity(path: str | os.PathLike[str], model: Sensitivity) -> Path:
    """The heat map: one row per gene, one column per width, colour = error increase
    over the base genome on a log scale. Increases of 0 or less (the base width, or a
    width that happens to help) are drawn white; failed probes are hatched black."""
    matrix, widths = increase_matrix(model)
    finite = matrix[np.isfinite(matrix) & (matrix > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1e-12, 1.0)
    shown = np.where(np.isfinite(matrix) & (matrix > 0), matrix, np.nan)
    height = max(3.0, 0.16 * len(model.genes) + 1.5)
    fig = Figure(figsize=(6.5, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        shown,
        aspect="auto",
        cmap="viridis_r",
        norm=LogNorm(vmin=low, vmax=max(high, low * 1.0001)),
        interpolation="nearest",
    )
    for gene, column in zip(*np.nonzero(np.isinf(matrix))):
        ax.add_patch(
            Rectangle((column - 0.5, gene - 0.5), 1, 1, facecolor="black", hatch="xx")
        )
    ax.set_xticks(range(len(widths)), [f"W{bits}" for bits in widths])
    ax.set_yticks(range(len(model.genes)), model.genes, fontsize=6)
    ax.set_xlabel(
        f"width of the one moved layer (all others at {model.base_bits} bits)"
    )
    error = model.objectives[1]
    fig.colorbar(image, ax=ax, label=f"{error} increase ({MEASURED_ON}), log scale")
    ax.set_title(f"per-layer sensitivity: base {error} {model.base_error:.3g}")
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def write_sensitivity(
    run_dir: Path, plots_dir: Path, model: Sensitivity
) -> tuple[Path, Path]:
    """``sensitivity.json`` in the run dir and the heat map in its plots folder."""
    table = model.to_json() | {"measured_on": MEASURED_ON}
    json_path = run_dir / SENSITIVITY_FILE
    write_json_atomic(json_path, table)
    plots_dir.mkdir(parents=True, exist_ok=True)
    return json_path, plot_sensitivity(plots_dir / SENSITIVITY_PLOT, model)


def table_lines(model: Sensitivity) -> list[str]:
    """The table as text: one row per gene, the error increase at each width."""
    matrix, widths = increase_matrix(model)
    name_width = max(len(name) for name in model.genes)
    header = " ".join(f"{'W' + str(b):>10}" for b in widths)
    lines = [f"{'gene':<{name_width}} {header}"]
    for name, row in zip(model.genes, matrix):
        cells = " ".join(f"{_cell(v):>10}" for v in row)
        lines.append(f"{name:<{name_width}} {cells}")
    return lines


def _cell(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "failed"
    return f"{value:+.3g}"
