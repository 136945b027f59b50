"""Per-layer sensitivity: what each layer costs in error when it alone leaves the base width.

The probes are the base genome (every searchable gene at ``base_bits``; fixed layers
keep theirs) and, for each gene, one genome per other width of its alphabet with only
that gene moved: ``L x (levels - 1) + 1`` genomes. They are scored like any genome
(through the archive, so a search or a second sensitivity run never pays for them
again), and their increases over the base are the additive model that seeding and
screening start from (``evoquant.seeding``, ``evoquant.surrogate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evoquant.archive import FAILED
from evoquant.errors import UserError
from evoquant.space import SearchSpace

Genome = tuple[int, ...]
MetricsOf = Callable[[list[list[int]]], Mapping[Genome, Mapping[str, Any]]]


def base_levels(space: SearchSpace, base_bits: int) -> np.ndarray:
    """Level indices of the base genome: every gene at ``base_bits``, fixed genes (one
    width) at theirs; a gene whose alphabet lacks it is a UserError."""
    bits = [a[0] if len(a) == 1 else base_bits for a in space.gene_alphabets]
    try:
        return space.from_bits(bits)
    except UserError as error:
        raise UserError(
            f"sensitivity base width {base_bits} bits: {error}; choose "
            "search.seeding.base_bits from it"
        ) from None


def probe_levels(space: SearchSpace, base_bits: int) -> np.ndarray:
    """The base genome first, then each gene moved alone to each other level, gene by gene."""
    base = base_levels(space, base_bits)
    rows = [base]
    for gene, top in enumerate(space.xu):
        for level in range(int(top) + 1):
            if level != base[gene]:
                row = base.copy()
                row[gene] = level
                rows.append(row)
    return np.array(rows, dtype=int)


def probe_genomes(space: SearchSpace, base_bits: int) -> list[list[int]]:
    """The probes as bit lists, in ``probe_levels``'s order."""
    return [space.to_bits(row) for row in probe_levels(space, base_bits)]


def _value(metrics: Mapping[str, Any], name: str) -> float:
    """An objective of a probe; a failed probe's error is infinitely bad."""
    if FAILED in metrics:
        return math.inf
    return float(metrics[name])


@dataclass(frozen=True)
class Sensitivity:
    """The additive model: base cost and error, and per gene and level their increases.

    ``error_increase[g, k]`` and ``cost_increase[g, k]`` are the probe of gene ``g`` at
    level ``k`` minus the base (0 at the base level, NaN past a gene's alphabet, inf
    for a probe that failed). For a cost that is a sum over layers (every bit cost
    is) the additive cost of any genome is exact.
    """

    genes: tuple[str, ...]
    alphabets: tuple[tuple[int, ...], ...]
    base_bits: int
    base: np.ndarray
    base_cost: float
    base_error: float
    cost_increase: np.ndarray
    error_increase: np.ndarray
    objectives: tuple[str, str]

    @property
    def probes(self) -> int:
        """How many genomes were probed: the base and each other width of each gene."""
        return 1 + int(sum(len(a) - 1 for a in self.alphabets))

    def predict(self, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Additive cost and error of genomes (rows of level indices)."""
        levels = np.atleast_2d(np.asarray(levels, dtype=int))
        genes = np.arange(levels.shape[1])
        cost = self.base_cost + self.cost_increase[genes, levels].sum(axis=1)
        error = self.base_error + self.error_increase[genes, levels].sum(axis=1)
        return cost, error

    def to_json(self) -> dict[str, Any]:
        """The table users read: per gene and width the measured error and its increase."""
        cost, error = self.objectives

        def number(value: float) -> float | None:
            return float(value) if math.isfinite(value) else None

        rows = []
        for gene, (name, alphabet) in enumerate(zip(self.genes, self.alphabets)):
            widths = {}
            for level, bits in enumerate(alphabet):
                increase = self.error_increase[gene, level]
                widths[str(bits)] = {
                    error: number(self.base_error + increase),
                    "error_increase": number(increase),
                    f"{cost}_increase": number(self.cost_increase[gene, level]),
                }
            rows.append({"gene": name, "widths": widths})
        return {
            "base_bits": self.base_bits,
            "base": {cost: self.base_cost, error: self.base_error},
            "objectives": list(self.objectives),
            "probes": self.probes,
            "genes": rows,
        }


def measure_sensitivity(
    space: SearchSpace,
    base_bits: int,
    metrics_of: MetricsOf,
    objectives: Sequence[str],
) -> Sensitivity:
    """Score every probe with ``metrics_of`` (archive first, then the evaluator) and
    return the additive model. A failed base genome leaves nothing to compare with."""
    levels = probe_levels(space, base_bits)
    probes = probe_genomes(space, base_bits)
    results = metrics_of(probes)
    cost_name, error_name = objectives
    base_metrics = results[tuple(probes[0])]
    if FAILED in base_metrics:
        raise UserError(
            f"the sensitivity base genome (all layers at {base_bits} bits) failed: "
            f"{base_metrics[FAILED]}"
        )
    width = int(space.xu.max()) + 1
    cost_increase = np.full((space.n_genes, width), np.nan)
    error_increase = np.full((space.n_genes, width), np.nan)
    base = levels[0]
    base_cost = _value(base_metrics, cost_name)
    base_error = _value(base_metrics, error_name)
    for gene in range(space.n_genes):
        cost_increase[gene, base[gene]] = error_increase[gene, base[gene]] = 0.0
    for row, bits in zip(levels[1:], probes[1:]):
        gene = int(np.flatnonzero(row != base)[0])
        metrics = results[tuple(bits)]
        error_increase[gene, row[gene]] = _value(metrics, error_name) - base_error
        # a failed probe reported no cost; its infinite error keeps it out of any front
        cost_increase[gene, row[gene]] = (
            0.0 if FAILED in metrics else _value(metrics, cost_name) - base_cost
        )
    return Sensitivity(
        genes=tuple(space.gene_names),
        alphabets=tuple(space.gene_alphabets),
        base_bits=base_bits,
        base=base,
        base_cost=base_cost,
        base_error=base_error,
        cost_increase=cost_increase,
        error_increase=error_increase,
        objectives=(cost_name, error_name),
    )
