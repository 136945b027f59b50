import itertools

import numpy as np
import pytest

from evoquant.seeding import additive_front, seed_rows, spread
from evoquant.sensitivity import Sensitivity


def random_model(seed, genes=5, levels=(4, 4, 2, 4, 3)):
    """An additive model with integer cost steps (as bit costs have) and random errors."""
    rng = np.random.default_rng(seed)
    width = max(levels)
    cost = np.full((genes, width), np.nan)
    error = np.full((genes, width), np.nan)
    base = np.array([rng.integers(0, n) for n in levels])
    for gene, n in enumerate(levels):
        cost[gene, :n] = rng.integers(-40, 60, size=n) * 16
        error[gene, :n] = rng.exponential(size=n)
        cost[gene, base[gene]] = error[gene, base[gene]] = 0.0
    alphabets = tuple((2, 4, 8, 16)[:n] for n in levels)
    return Sensitivity(
        genes=tuple(f"g{i}" for i in range(genes)),
        alphabets=alphabets,
        base_bits=8,
        base=base,
        base_cost=1000.0,
        base_error=0.5,
        cost_increase=cost,
        error_increase=error,
        objectives=("f_bits", "error"),
    )


def brute_force_front(model):
    genomes = np.array(
        list(itertools.product(*[range(len(a)) for a in model.alphabets]))
    )
    cost, error = model.predict(genomes)
    return {
        tuple(g)
        for g, c, e in zip(genomes, cost, error)
        if not np.any((cost <= c) & (error < e))
    }


@pytest.mark.parametrize("seed", range(6))
def test_the_dynamic_programme_finds_exactly_the_brute_force_front(seed):
    model = random_model(seed)
    front = additive_front(model)
    assert {tuple(row) for row in front} == brute_force_front(model)
    cost, error = model.predict(front)
    assert np.all(np.diff(cost) > 0) and np.all(np.diff(error) < 0)


def test_a_failed_probe_is_never_on_the_front():
    model = random_model(0)
    model.error_increase[1, 0] = np.inf
    assert all(row[1] != 0 for row in additive_front(model))


def test_spread_keeps_both_ends_and_the_count():
    rows = np.arange(20).reshape(10, 2)
    picked = spread(rows, 4)
    assert len(picked) == 4
    assert picked[0].tolist() == [0, 1] and picked[-1].tolist() == [18, 19]
    assert len(spread(rows, 50)) == 10 and len(spread(rows, 0)) == 0


def test_seed_rows_start_with_the_uniform_genomes_and_fill_the_share():
    model = random_model(3, levels=(4, 4, 4, 4, 4))
    uniform = np.array([[k] * 5 for k in range(4)])
    rows = seed_rows(model, uniform, pop_size=20, share=0.5)
    assert rows[:4].tolist() == uniform.tolist()
    front = {tuple(r) for r in additive_front(model)}
    assert len(rows) == min(10, 4 + len(front - {tuple(u) for u in uniform}))
    assert all(tuple(r) in front for r in rows[4:])
    assert len({tuple(r) for r in rows}) == len(rows)
