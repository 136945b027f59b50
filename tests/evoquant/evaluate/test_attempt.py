import pytest
import torch

from evoquant.evaluate.attempt import attempt, fixed_threads


def test_fixed_threads_applies_inside_and_restores_after():
    before = torch.get_num_threads()
    with fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_score_does_not_depend_on_the_callers_thread_count():
    values = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0))

    def fitness(configs):
        return {"sum": float(values.sum())}

    threads = torch.get_num_threads()
    try:
        scores = []
        for caller_threads in (1, 2):
            torch.set_num_threads(caller_threads)
            scores.append(attempt(fitness, [], threads=1))
    finally:
        torch.set_num_threads(threads)
    assert scores[0] == scores[1]


def test_a_bad_configuration_is_a_failed_result_and_a_bug_is_raised():
    def diverges(configs):
        raise FloatingPointError("NaN in layer fc")

    def buggy(configs):
        raise KeyError("typo")

    assert attempt(diverges, [(2, 8)], 1) == {
        "failed": "FloatingPointError: NaN in layer fc"
    }
    with pytest.raises(KeyError):
        attempt(buggy, [(2, 8)], 1)
