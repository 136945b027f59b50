"""Surrogate screening: breed many offspring, evaluate only those a model fitted on the archive likes.

The model starts from the additive one (``evoquant.sensitivity``) and learns what it
misses from every genome archived so far: a ridge regression of ``log error`` minus
the additive prediction's log on per-gene width indicators and on the widths of
neighbouring genes together (the interactions along the network). Cost needs no
model: it is additive and exact for bit costs. The fit is deterministic (a closed-form
ridge solve on rows sorted by genome), and the only randomness in screening is the
exploration draw from the generator it is handed, so a resumed search screens exactly
as the uninterrupted one did.
"""

from __future__ import annotations

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from sklearn.linear_model import Ridge

from evoquant.sensitivity import Sensitivity

RIDGE_ALPHA = 1.0
"""The ridge penalty: corrections stay small until the archive shows they are real."""


class ErrorSurrogate:
    """Predicted error of genomes (rows of level indices): additive model x learned correction."""

    def __init__(self, model: Sensitivity) -> None:
        self.model = model
        self.levels = int(np.max([len(a) for a in model.alphabets]))
        self.free = [g for g, a in enumerate(model.alphabets) if len(a) > 1]
        positive = model.base_error + model.error_increase
        positive = positive[np.isfinite(positive) & (positive > 0)]
        self.floor = float(positive.min()) / 2 if positive.size else 1e-12
        self.regression: Ridge | None = None

    def _log_additive(self, levels: np.ndarray) -> np.ndarray:
        _, error = self.model.predict(levels)
        return np.log(np.clip(error, self.floor, 1e300))

    def _features(self, levels: np.ndarray) -> np.ndarray:
        """One-hot width of every free gene, and of every pair of neighbouring free genes."""
        n, k = len(levels), self.levels
        columns = [np.eye(k)[levels[:, g]] for g in self.free]
        for a, b in zip(self.free, self.free[1:]):
            columns.append(np.eye(k * k)[levels[:, a] * k + levels[:, b]])
        return np.hstack(columns) if columns else np.zeros((n, 0))

    def fit(self, levels: np.ndarray, error: np.ndarray) -> ErrorSurrogate:
        """Learn the correction from evaluated genomes (failed ones left out by the caller)."""
        levels = np.asarray(levels, dtype=int)
        target = np.log(np.clip(np.asarray(error, dtype=float), self.floor, 1e300))
        residual = target - self._log_additive(levels)
        self.regression = Ridge(alpha=RIDGE_ALPHA).fit(self._features(levels), residual)
        return self

    def predict(self, levels: np.ndarray) -> np.ndarray:
        levels = np.asarray(levels, dtype=int)
        log_error = self._log_additive(levels)
        if self.regression is not None:
            log_error = log_error + self.regression.predict(self._features(levels))
        return np.exp(log_error)


def promising_order(candidates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Candidate indices best first: by non-dominated rank among candidates and reference
    (the evaluated genomes' true objectives) together, then by crowding within a rank."""
    F = np.vstack([reference, candidates])
    fronts = NonDominatedSorting().do(F)
    rank = np.empty(len(F), dtype=int)
    crowding = np.empty(len(F))
    for number, front in enumerate(fronts):
        rank[front] = number
        crowding[front] = calc_crowding_distance(F[front])
    offset = len(reference)
    rank, crowding = rank[offset:], crowding[offset:]
    return np.lexsort((np.arange(len(candidates)), -crowding, rank))


def screen(
    candidates: np.ndarray,
    reference: np.ndarray,
    count: int,
    exploration: float,
    random_state: np.random.Generator,
) -> np.ndarray:
    """Which ``count`` candidates (rows of predicted objectives) to evaluate: the most
    promising, then ``round(exploration x count)`` drawn at random from the rest."""
    order = promising_order(candidates, reference)
    if count >= len(order):
        return order
    explore = min(round(exploration * count), len(order) - count)
    chosen = order[: count - explore]
    rest = order[count - explore :]
    drawn = random_state.choice(len(rest), size=explore, replace=False)
    return np.concatenate([chosen, rest[np.sort(drawn)]])
