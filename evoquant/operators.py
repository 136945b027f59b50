"""The thesis's variation operators as pymoo parts, acting on genomes of level indices.

Each gene ``i`` takes levels ``problem.xl[i]..problem.xu[i]`` (ascending bit-widths), so
the operators need nothing but the bounds: a gene with ``xl == xu`` is a fixed layer and
never changes. All randomness comes from the ``random_state`` pymoo passes in, which is
what makes a resumed search replay the same offspring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.sampling import Sampling

from evoquant.errors import UserError

SPLITS = ("midpoint", "random", "module")
MAX_SAMPLING_ROUNDS = 100


def _bounds(problem) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(problem.xl, dtype=int), np.asarray(problem.xu, dtype=int)


class AdjacentBitMutation(Mutation):
    """A mutated gene steps one level up or down (2<->4<->8<->16), never jumps.

    The lowest level can only go up and the highest only down. Each gene mutates
    with probability ``prob_var`` (default ``1 / L``).
    """

    def _do(self, problem, X, random_state=None, **kwargs):
        xl, xu = _bounds(problem)
        prob = self.get_prob_var(problem, size=(len(X), 1))
        mutate = (random_state.random(X.shape) < prob) & (xu > xl)
        step = np.where(random_state.random(X.shape) < 0.5, -1, 1)
        step = np.where(X <= xl, 1, np.where(X >= xu, -1, step))
        return np.where(mutate, X + step, X)


class RandomResetMutation(Mutation):
    """The thesis's first variant: a mutated gene takes any other level of its alphabet."""

    def _do(self, problem, X, random_state=None, **kwargs):
        xl, xu = _bounds(problem)
        prob = self.get_prob_var(problem, size=(len(X), 1))
        mutate = (random_state.random(X.shape) < prob) & (xu > xl)
        other = xl + random_state.integers(0, np.maximum(xu - xl, 1), size=X.shape)
        other = other + (other >= X)
        return np.where(mutate, other, X)


class HalfSplitCrossover(Crossover):
    """Two parents swap the genes after one split point, giving two children.

    ``split``: ``midpoint`` (L // 2, the thesis), ``random`` (uniform in 1..L-1, drawn
    per mating) or ``module`` (of ``boundaries``, the gene indices where a main module
    starts, the one nearest the middle), so a child inherits whole main modules.
    """

    def __init__(
        self, split: str = "midpoint", boundaries: Sequence[int] = (), **kwargs
    ) -> None:
        super().__init__(2, 2, **kwargs)
        if split not in SPLITS:
            raise UserError(f"unknown crossover split {split!r}: use one of {SPLITS}")
        if split == "module" and not boundaries:
            raise UserError(
                "crossover 'module' needs layers from at least two main modules"
            )
        self.split = split
        self.boundaries = np.asarray(boundaries, dtype=int)

    def _points(self, n_matings: int, n_var: int, random_state) -> np.ndarray:
        if self.split == "random":
            return random_state.integers(1, max(n_var, 2), size=n_matings)
        if self.split == "module":
            nearest = self.boundaries[np.argmin(np.abs(2 * self.boundaries - n_var))]
            return np.full(n_matings, nearest)
        return np.full(n_matings, n_var // 2)

    def _do(self, problem, X, random_state=None, **kwargs):
        _, n_matings, n_var = X.shape
        points = self._points(n_matings, n_var, random_state)
        head = np.arange(n_var)[None, :] < points[:, None]
        return np.stack([np.where(head, X[0], X[1]), np.where(head, X[1], X[0])])


def _unique_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` without repeats, first occurrences in their original order."""
    _, first = np.unique(X, axis=0, return_index=True)
    return X[np.sort(first)]


class UniformPlusRandomSampling(Sampling):
    """The initial population: every uniform configuration (the baselines to beat), then random genomes.

    Returns distinct genomes, fewer than asked only when the space is that small.
    """

    def __init__(self, uniform: np.ndarray) -> None:
        super().__init__()
        self.uniform = np.asarray(uniform, dtype=int)

    def _do(self, problem, n_samples, random_state=None, **kwargs):
        xl, xu = _bounds(problem)
        X = _unique_rows(self.uniform.reshape(-1, problem.n_var))[:n_samples]
        for _ in range(MAX_SAMPLING_ROUNDS):
            if len(X) >= n_samples:
                break
            draw = random_state.integers(
                xl, xu + 1, size=(n_samples - len(X), problem.n_var)
            )
            X = _unique_rows(np.vstack([X, draw]))
        return X
