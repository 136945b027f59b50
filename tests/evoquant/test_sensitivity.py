import runpy
from pathlib import Path

import numpy as np
import pytest

from evoquant.errors import UserError
from evoquant.sensitivity import measure_sensitivity, probe_levels
from evoquant.space import SearchSpace

synthetic = runpy.run_path(str(Path(__file__).with_name("search_worker.py")))
LAYERS, make_config, SyntheticEvaluator = (
    synthetic["LAYERS"],
    synthetic["make_config"],
    synthetic["SyntheticEvaluator"],
)


def space_of(**search):
    return SearchSpace.from_config(LAYERS, make_config(**search))


def test_probes_are_the_base_and_each_gene_moved_alone():
    space = space_of()
    probes = probe_levels(space, 8)
    levels = len(space.alphabet)
    assert len(probes) == space.n_genes * (levels - 1) + 1
    base = probes[0]
    assert space.to_bits(base) == [8] * space.n_genes
    moved = (probes[1:] != base).sum(axis=1)
    assert np.all(moved == 1)
    assert len({tuple(p) for p in probes}) == len(probes)


def test_fixed_layers_are_not_probed():
    config = make_config()
    fixed = config.model_copy(
        update={"layers": config.layers.model_copy(update={"fixed": {"block0.*": 4}})}
    )
    space = SearchSpace.from_config(LAYERS, fixed)
    probes = probe_levels(space, 8)
    assert len(probes) == (space.n_genes - 5) * 3 + 1
    assert space.to_bits(probes[0])[:5] == [4] * 5


def test_a_base_width_outside_the_alphabet_is_refused():
    with pytest.raises(UserError, match=r"base width 8 bits: .* not in its alphabet"):
        probe_levels(space_of(alphabet=[2, 4, 16]), 8)


def test_increases_are_the_probes_minus_the_base_and_predict_additive_genomes():
    space = space_of()
    evaluator = SyntheticEvaluator(space)  # error and f_bits are sums over layers

    def metrics_of(genomes):
        return {tuple(b): m for b, m in evaluator.evaluate(genomes)}

    model = measure_sensitivity(space, 8, metrics_of, ("f_bits", "error"))
    genome = np.random.default_rng(0).integers(1, 4, size=space.n_genes)
    cost, error = model.predict(genome)
    exact = evaluator.metrics(space.to_bits(genome))
    assert cost[0] == pytest.approx(exact["f_bits"])
    assert error[0] == pytest.approx(exact["error"])
    assert np.all(model.error_increase[:, 0] > 0)  # 2 bits is worse than 8 everywhere
    table = model.to_json()
    assert table["probes"] == len(probe_levels(space, 8))
    assert table["genes"][0]["widths"]["8"]["error_increase"] == 0.0
