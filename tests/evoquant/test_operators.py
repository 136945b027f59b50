import numpy as np
import pytest
from pymoo.core.population import Population
from pymoo.core.problem import Problem

from evoquant.errors import UserError
from evoquant.operators import (
    AdjacentBitMutation,
    RandomResetMutation,
    UniformPlusRandomSampling,
    split_crossover,
)
from evoquant.quant.layers import Layer
from evoquant.space import SearchSpace

LAYERS = [Layer(f"m{i // 6}.layer{i}", "conv2d", 10 * (i + 1)) for i in range(24)]
SPACE = SearchSpace(LAYERS, fixed={"m0.layer3": 8, "m2.*": 16}, policy="two_genes")
FIXED = SPACE.xu == SPACE.xl


def problem(space=SPACE):
    return Problem(n_var=space.n_genes, xl=space.xl, xu=space.xu, vtype=int)


def random_population(rng, n=40, space=SPACE):
    return rng.integers(space.xl, space.xu + 1, size=(n, space.n_genes))


def test_adjacent_mutation_moves_one_level_within_the_alphabet():
    rng = np.random.default_rng(0)
    for _ in range(50):
        X = random_population(rng)
        prob_var = rng.uniform(0.05, 1.0)
        Xp = AdjacentBitMutation(prob_var=prob_var)._do(problem(), X, random_state=rng)
        assert np.all(np.abs(Xp - X) <= 1)
        assert np.all((Xp >= SPACE.xl) & (Xp <= SPACE.xu))
        assert np.array_equal(Xp[:, FIXED], X[:, FIXED])


def test_adjacent_mutation_at_the_ends_only_goes_inwards():
    rng = np.random.default_rng(1)
    X = np.vstack([SPACE.xl, SPACE.xu])
    Xp = AdjacentBitMutation(prob_var=1.0)._do(problem(), X, random_state=rng)
    free = ~FIXED
    assert np.array_equal(Xp[0, free], SPACE.xl[free] + 1)
    assert np.array_equal(Xp[1, free], SPACE.xu[free] - 1)
    bits = SPACE.to_bits(Xp[0])
    assert bits[0:2] == [4, 16]


def test_mutation_rate_defaults_to_one_over_genome_length():
    rng = np.random.default_rng(2)
    X = random_population(rng, n=4000)
    Xp = AdjacentBitMutation()._do(problem(), X, random_state=rng)
    changed_per_genome = np.mean(np.sum(Xp != X, axis=1))
    expected = np.sum(~FIXED) / SPACE.n_genes
    assert abs(changed_per_genome - expected) < 0.05


def test_random_reset_takes_another_level_of_the_alphabet():
    rng = np.random.default_rng(3)
    for _ in range(50):
        X = random_population(rng)
        Xp = RandomResetMutation(prob_var=1.0)._do(problem(), X, random_state=rng)
        assert np.all((Xp >= SPACE.xl) & (Xp <= SPACE.xu))
        assert np.all(Xp[:, ~FIXED] != X[:, ~FIXED])
        assert np.array_equal(Xp[:, FIXED], X[:, FIXED])
    X = np.ones((2000, SPACE.n_genes), dtype=int) * (SPACE.xu > 0)
    Xp = RandomResetMutation(prob_var=1.0)._do(problem(), X, random_state=rng)
    assert set(Xp[:, 0]) == {0, 2, 3}


def test_mutation_through_pymoo_keeps_integers():
    rng = np.random.default_rng(4)
    pop = Population.new("X", random_population(rng))
    out = AdjacentBitMutation(prob_var=0.5).do(problem(), pop, random_state=rng)
    assert out.get("X").dtype.kind == "i"


def parents(rng, n_matings=30):
    return np.stack([random_population(rng, n_matings) for _ in range(2)])


def assert_split(X, children, points):
    for m, k in enumerate(points):
        assert np.array_equal(children[0, m], np.r_[X[0, m, :k], X[1, m, k:]])
        assert np.array_equal(children[1, m], np.r_[X[1, m, :k], X[0, m, k:]])


def test_midpoint_crossover_swaps_exact_halves():
    rng = np.random.default_rng(5)
    X = parents(rng)
    children = split_crossover()._do(problem(), X, random_state=rng)
    assert_split(X, children, [SPACE.n_genes // 2] * X.shape[1])


def test_module_crossover_splits_at_the_module_boundary_nearest_the_middle():
    rng = np.random.default_rng(6)
    X = parents(rng)
    boundaries = SPACE.module_boundaries()
    assert boundaries == [12, 24, 36]
    crossover = split_crossover("module", boundaries)
    children = crossover._do(problem(), X, random_state=rng)
    assert_split(X, children, [24] * X.shape[1])
    lopsided = split_crossover("module", [3, 40])._do(problem(), X, random_state=rng)
    assert_split(X, lopsided, [40] * X.shape[1])


def test_random_crossover_splits_each_mating_somewhere_inside():
    rng = np.random.default_rng(7)
    L = SPACE.n_genes
    X = np.stack([np.zeros((200, L), dtype=int), np.ones((200, L), dtype=int)])
    children = split_crossover("random")._do(problem(), X, random_state=rng)
    points = (children[0] == 0).sum(axis=1)
    assert_split(X, children, points)
    assert points.min() >= 1 and points.max() <= L - 1
    assert len(set(points)) > L // 2


def test_crossover_never_changes_fixed_genes():
    rng = np.random.default_rng(8)
    for split in ("midpoint", "random", "module"):
        crossover = split_crossover(split, SPACE.module_boundaries(), prob=1.0)
        pop = Population.new("X", random_population(rng))
        parents_idx = rng.integers(0, len(pop), size=(20, 2))
        off = crossover.do(problem(), pop, parents_idx, random_state=rng).get("X")
        assert off.shape == (40, SPACE.n_genes)
        assert np.array_equal(
            off[:, FIXED], np.broadcast_to(SPACE.xl[FIXED], off[:, FIXED].shape)
        )


def test_bad_crossover_settings_are_user_errors():
    with pytest.raises(UserError, match="main modules"):
        split_crossover("module", [])
    with pytest.raises(
        UserError,
        match="unknown crossover 'uniform': use one of midpoint, module, random$",
    ):
        split_crossover("uniform")


def test_sampling_starts_with_every_uniform_configuration():
    rng = np.random.default_rng(9)
    uniform = SPACE.uniform_genomes()
    X = UniformPlusRandomSampling(uniform)._do(problem(), 30, random_state=rng)
    assert X.shape == (30, SPACE.n_genes)
    assert np.array_equal(X[: len(uniform)], uniform)
    assert len(np.unique(X, axis=0)) == 30
    assert np.all((X >= SPACE.xl) & (X <= SPACE.xu))
    assert np.array_equal(X[:, FIXED], np.zeros_like(X[:, FIXED]))
    again = UniformPlusRandomSampling(uniform)._do(
        problem(), 30, random_state=np.random.default_rng(9)
    )
    assert np.array_equal(X, again)


def test_sampling_a_space_smaller_than_the_population():
    tiny = SearchSpace(LAYERS[:2], alphabet=[4, 8])
    sampling = UniformPlusRandomSampling(tiny.uniform_genomes())
    X = sampling._do(problem(tiny), 10, random_state=np.random.default_rng(0))
    assert sorted(map(tuple, X)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    few = sampling._do(problem(tiny), 1, random_state=np.random.default_rng(0))
    assert few.tolist() == [[0, 0]]


def test_split_crossovers_are_registered_classes():
    from evoquant.operators import (
        MidpointCrossover,
        ModuleSplitCrossover,
        RandomSplitCrossover,
        SplitCrossover,
    )
    from evoquant.registry import CROSSOVERS, MUTATIONS, lookup, names

    assert names(CROSSOVERS)[:3] == ["midpoint", "module", "random"]
    assert lookup(CROSSOVERS, "midpoint") is MidpointCrossover
    assert lookup(CROSSOVERS, "random") is RandomSplitCrossover
    assert lookup(CROSSOVERS, "module") is ModuleSplitCrossover
    assert issubclass(ModuleSplitCrossover, SplitCrossover)
    assert lookup(MUTATIONS, "adjacent") is AdjacentBitMutation
    assert lookup(MUTATIONS, "random_reset") is RandomResetMutation
    assert isinstance(split_crossover("module", [3, 40]), ModuleSplitCrossover)
