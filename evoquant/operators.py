"""The thesis's variation operators as pymoo parts, acting on genomes of level indices.

Each gene ``i`` takes levels ``problem.xl[i]..problem.xu[i]`` (ascending bit-widths), so
the operators need nothing but the bounds: a gene with ``xl == xu`` is a fixed layer and
never changes. Mutations and crossovers are registered by the names a config gives
(``evoquant.registry``). All randomness comes from the ``random_state`` pymoo passes in, which is
what makes a resumed search replay the same offspring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.sampling import Sampling

from evoquant.errors import UserError
from evoquant.registry import CROSSOVERS, MUTATIONS, UnknownName, lookup

MAX_SAMPLING_ROUNDS = 100


def _bounds(problem) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(problem.xl, dtype=int), np.asarray(problem.xu, dtype=int)


@MUTATIONS.register_module("adjacent")
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


@MUTATIONS.register_module("random_reset")
class RandomResetMutation(Mutation):
    """The thesis's first variant: a mutated gene takes any other level of its alphabet."""

    def _do(self, problem, X, random_state=None, **kwargs):
        xl, xu = _bounds(problem)
        prob = self.get_prob_var(problem, size=(len(X), 1))
        mutate = (random_state.random(X.shape) < prob) & (xu > xl)
        other = xl + random_state.integers(0, np.maximum(xu - xl, 1), size=X.shape)
        other = other + (other >= X)
        return np.where(mutate, other, X)


class SplitCrossover(Crossover):
    """Two parents swap the genes after one split point, giving two children.

    Where the point falls is the subclass's ``points``; ``boundaries`` are the gene
    indices where a main module starts. Registered in ``CROSSOVERS`` (what
    ``search.crossover`` names): ``midpoint`` (L // 2, the thesis), ``random``
    (uniform in 1..L-1, drawn per mating) and ``module`` (the boundary nearest the
    middle, so a child inherits whole main modules).
    """

    def __init__(self, boundaries: Sequence[int] = (), **kwargs) -> None:
        super().__init__(2, 2, **kwargs)
        self.boundaries = np.asarray(boundaries, dtype=int)

    def points(self, n_matings: int, n_var: int, random_state) -> np.ndarray:
        """One split point per mating: genes before it come from the first parent."""
        raise NotImplementedError

    def _do(self, problem, X, random_state=None, **kwargs):
        _, n_matings, n_var = X.shape
        points = self.points(n_matings, n_var, random_state)
        head = np.arange(n_var)[None, :] < points[:, None]
        return np.stack([np.where(head, X[0], X[1]), np.where(head, X[1], X[0])])


@CROSSOVERS.register_module("midpoint")
class MidpointCrossover(SplitCrossover):
    """The thesis's crossover: the split is the middle of the genome, L // 2."""

    def points(self, n_matings: int, n_var: int, random_state) -> np.ndarray:
        return np.full(n_matings, n_var // 2)


@CROSSOVERS.register_module("random")
class RandomSplitCrossover(SplitCrossover):
    """The split is drawn uniformly in 1..L-1, once per mating."""

    def points(self, n_matings: int, n_var: int, random_state) -> np.ndarray:
        return random_state.integers(1, max(n_var, 2), size=n_matings)


@CROSSOVERS.register_module("module")
class ModuleSplitCrossover(SplitCrossover):
    """The split is the main-module boundary nearest the middle of the genome."""

    def __init__(self, boundaries: Sequence[int] = (), **kwargs) -> None:
        super().__init__(boundaries, **kwargs)
        if not len(self.boundaries):
            raise UserError(
                "crossover 'module' needs layers from at least two main modules"
            )

    def points(self, n_matings: int, n_var: int, random_state) -> np.ndarray:
        nearest = self.boundaries[np.argmin(np.abs(2 * self.boundaries - n_var))]
        return np.full(n_matings, nearest)


def split_crossover(
    split: str = "midpoint", boundaries: Sequence[int] = (), **kwargs
) -> Crossover:
    """The crossover registered as ``split``, built as the search builds it."""
    try:
        crossover = lookup(CROSSOVERS, split)
    except UnknownName as error:
        raise UserError(str(error)) from None
    return crossover(boundaries, **kwargs)


HalfSplitCrossover = split_crossover
"""The old name (evoquant 0.3), kept for code that imports it: ``split_crossover``."""


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
