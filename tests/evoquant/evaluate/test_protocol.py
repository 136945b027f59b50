"""``GenomeEvaluator``: every back-end the search takes has its one method, lazily."""

import inspect

import pytest

from evoquant.evaluate.local import LocalEvaluator
from evoquant.evaluate.protocol import GenomeEvaluator
from evoquant.evaluate.ray_backend import RayEvaluator
from evoquant.quant.layers import Layer
from evoquant.space import SearchSpace


def protocol_methods(protocol: type) -> set[str]:
    return {
        name
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


@pytest.mark.parametrize("backend", [LocalEvaluator, RayEvaluator])
def test_each_backend_has_the_protocols_methods_as_generators(backend):
    """Generators, so the search takes each ``(bits, metrics)`` as it finishes."""
    assert protocol_methods(GenomeEvaluator) == {"evaluate"}
    for name in protocol_methods(GenomeEvaluator):
        wanted = inspect.signature(getattr(GenomeEvaluator, name)).parameters
        method = getattr(backend, name)
        assert list(inspect.signature(method).parameters) == list(wanted)
        assert inspect.isgeneratorfunction(method)


def test_a_genome_is_scored_only_when_its_result_is_taken():
    space = SearchSpace([Layer("a", "linear", 10)])
    scored = []

    def fitness(configs):
        scored.append(configs)
        return {"error": 0.0}

    results = LocalEvaluator(fitness, space.bit_configs).evaluate([[2], [8]])
    assert scored == []
    assert next(results) == ([2], {"error": 0.0}) and len(scored) == 1
    assert next(results)[0] == [8] and len(scored) == 2
