"""Generation 0 from the additive model: its exact front over the whole space, spread along cost.

The additive model (``evoquant.sensitivity``) predicts a genome's error as the base
error plus each gene's measured increase, and its cost likewise (exact for bit costs).
Its Pareto front over all genomes is found exactly by dynamic programming over the
genes on the cost axis, as a knapsack is: after gene ``g``, for every reachable cost
the least error any choice of genes ``0..g`` gives. Costs are first put on an integer
grid: the largest unit all cost steps are multiples of (exact for bit costs, whose
steps are weights x bits), or, when that grid would be finer than ``MAX_BINS``,
``MAX_BINS`` equal steps (the front is then exact up to that rounding of cost).
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np

from evoquant.sensitivity import Sensitivity

MAX_BINS = 200_000
"""The finest cost grid the DP keeps: its table of choices is genes x bins bytes."""


def _cost_grid(steps: np.ndarray) -> np.ndarray:
    """Non-negative per-gene cost steps (NaN where a gene has no such level) as
    integers on the grid, -1 where absent."""
    present = np.isfinite(steps)
    values = steps[present]
    total = float(np.nanmax(steps, axis=1).sum())
    unit = total / MAX_BINS if total else 1.0
    if total and np.all(values == np.round(values)) and total < 2**53:
        exact = float(reduce(math.gcd, (int(v) for v in values if v), 0))
        if total / exact <= MAX_BINS:
            unit = exact
    return np.where(present, np.round(np.where(present, steps, 0) / unit), -1).astype(
        np.int64
    )


def additive_front(model: Sensitivity) -> np.ndarray:
    """Every genome on the additive model's Pareto front (rows of level indices), cheapest first.

    A genome is kept when no other has lower-or-equal predicted cost and lower
    predicted error; of several with the same cost and error one is kept (the first
    level in each gene's order). Levels whose probe failed (infinite error) are chosen
    only where nothing else exists.
    """
    cost = model.cost_increase - np.nanmin(model.cost_increase, axis=1, keepdims=True)
    steps = _cost_grid(cost)
    error = np.where(np.isnan(model.error_increase), np.inf, model.error_increase)
    n_genes = len(steps)
    bins = int(steps.max(axis=1).clip(min=0).sum()) + 1
    best = np.full(bins, np.inf)
    best[0] = 0.0
    choices = np.zeros((n_genes, bins), dtype=np.int8)
    for gene in range(n_genes):
        new = np.full(bins, np.inf)
        for level in np.flatnonzero(steps[gene] >= 0):
            shift = steps[gene, level]
            candidate = np.full(bins, np.inf)
            candidate[shift:] = best[: bins - shift] + error[gene, level]
            better = candidate < new
            new[better] = candidate[better]
            choices[gene, better] = level
        best = new
    cheaper_best = np.minimum.accumulate(np.concatenate([[np.inf], best[:-1]]))
    front_bins = np.flatnonzero(np.isfinite(best) & (best < cheaper_best))
    genomes = np.empty((len(front_bins), n_genes), dtype=int)
    for row, end in enumerate(front_bins):
        position = end
        for gene in range(n_genes - 1, -1, -1):
            level = choices[gene, position]
            genomes[row, gene] = level
            position -= steps[gene, level]
    return _non_dominated(model, genomes)


def _non_dominated(model: Sensitivity, genomes: np.ndarray) -> np.ndarray:
    """The genomes no other dominates under the model's exact (unrounded) cost."""
    cost, error = model.predict(genomes)
    order = np.lexsort((error, cost))
    kept, lowest = [], np.inf
    for index in order:
        if error[index] < lowest:
            kept.append(index)
            lowest = error[index]
    return genomes[kept]


def spread(rows: np.ndarray, count: int) -> np.ndarray:
    """``count`` rows evenly spaced along ``rows`` (a front sorted by cost), both ends kept."""
    if count <= 0 or not len(rows):
        return rows[:0]
    if count >= len(rows):
        return rows
    return rows[np.unique(np.round(np.linspace(0, len(rows) - 1, count)).astype(int))]


def seed_rows(
    model: Sensitivity, uniform: np.ndarray, pop_size: int, share: float
) -> np.ndarray:
    """Generation 0's first rows: the uniform configurations, then front genomes spread
    along cost, ``round(share x pop_size)`` in all (at least the uniform ones)."""
    uniform = np.asarray(uniform, dtype=int).reshape(-1, len(model.genes))
    wanted = max(round(share * pop_size), len(uniform))
    known = {tuple(row) for row in uniform}
    front = np.array(
        [row for row in additive_front(model) if tuple(row) not in known], dtype=int
    ).reshape(-1, len(model.genes))
    return np.vstack([uniform, spread(front, wanted - len(uniform))])
