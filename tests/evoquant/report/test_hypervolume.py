import pytest

from evoquant.report.front import pareto_front
from evoquant.report.hypervolume import hypervolume, points_hypervolume, reference_point


def test_two_point_example_by_hand():
    # (1.1-0.2)*(1.1-0.8) + (1.1-0.6)*(0.8-0.3) = 0.27 + 0.25
    assert hypervolume([[0.2, 0.8], [0.6, 0.3]], (1.1, 1.1)) == pytest.approx(0.52)


def test_points_beyond_reference_add_nothing():
    ref = (1.1, 1.1)
    assert hypervolume([[0.2, 0.8], [0.6, 0.3], [1.5, 0.1]], ref) == pytest.approx(0.52)
    assert hypervolume([[2.0, 0.1]], ref) == 0.0
    assert hypervolume([], ref) == 0.0


def test_reference_point_from_uniform(uniform_points):
    assert reference_point(uniform_points) == pytest.approx((1.1, 0.88))
    assert reference_point([]) is None
    assert reference_point([{"relative_cost": 0.5, "error": 0.0}]) is None


def test_mixed_front_beats_uniform_front(uniform_points, mixed_points):
    ref = reference_point(uniform_points)
    front = pareto_front([*uniform_points, *mixed_points], ("relative_cost", "error"))
    assert points_hypervolume(front, ref) > points_hypervolume(uniform_points, ref) > 0
