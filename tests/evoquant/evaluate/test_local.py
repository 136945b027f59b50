from collections import Counter

from evoquant.evaluate.local import LocalEvaluator
from evoquant.quant.layers import Layer
from evoquant.space import SearchSpace

SPACE = SearchSpace([Layer("a", "linear", 10), Layer("b", "linear", 20)])


class Fitness:
    """Scores the weight bits; the all-2-bit genome raises."""

    def __init__(self):
        self.calls = Counter()

    def __call__(self, configs):
        self.calls[tuple(configs)] += 1
        if all(w == 2 for w, _ in configs):
            raise FloatingPointError("diverged")
        return {"bits": float(sum(w for w, _ in configs))}


def test_a_raising_genome_is_retried_then_failed_and_the_rest_go_on(caplog):
    fitness = Fitness()
    evaluator = LocalEvaluator(fitness, SPACE.bit_configs, threads=1, retries=2)
    with evaluator:
        results = list(evaluator.evaluate([[2, 2], [4, 8], [2, 2]]))
    assert results == [
        ([2, 2], {"failed": "FloatingPointError: diverged"}),
        ([4, 8], {"bits": 12.0}),
    ]
    assert fitness.calls == {((2, 8), (2, 8)): 3, ((4, 8), (8, 8)): 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"genome [2, 2]: attempt {n} of 3 failed: FloatingPointError: diverged"
        for n in (1, 2, 3)
    ]
