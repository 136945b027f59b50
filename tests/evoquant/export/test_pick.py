"""Picking rules on a constructed front."""

import json

import pytest

from evoquant.errors import UserError
from evoquant.export.pick import load_front, pick

OBJECTIVES = ["f_bits", "error"]


def point(relative_cost: float, error: float) -> dict:
    """A front point of a model with 1000 weights."""
    return {
        "f_bits": relative_cost * 32_000,
        "relative_cost": relative_cost,
        "avg_weight_bits": relative_cost * 32,
        "error": error,
        "bits": {"a": 8, "b": 8},
    }


FRONT = [
    point(0.0625, 0.40),  # 2 bits per weight
    point(0.10, 0.10),
    point(0.125, 0.02),  # the knee: error falls fastest up to here
    point(0.20, 0.015),
    point(0.50, 0.0),  # 16 bits per weight
]


def test_knee_is_the_best_balanced_point():
    assert pick(FRONT, "knee", OBJECTIVES) == 2


@pytest.mark.parametrize(
    ("rule", "index"),
    [
        ("min-error:0.15", 2),
        ("min-error:0.1", 1),
        ("min-error:0.0625", 0),
        ("min-error:1", 4),
        ("min-error:4.5b", 2),
        ("min-error:2b", 0),
        ("max-compression:0.1", 1),
        ("max-compression:0.05", 2),
        ("max-compression:0", 4),
        ("index:3", 3),
        ("index:0", 0),
    ],
)
def test_rules_pick_within_their_bound(rule, index):
    assert pick(FRONT, rule, OBJECTIVES) == index


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("best", "unknown pick rule 'best'"),
        ("min-error", "unknown pick rule"),
        ("knee:3", "unknown pick rule"),
        (
            "min-error:0.01",
            r"no front point has relative cost <= 0.01 \(the cheapest has 0.0625\)",
        ),
        ("min-error:1.5b", "no front point has average bits per weight <= 1.5"),
        ("min-error:cheap", "budget 'cheap' is not a number"),
        ("max-compression:-1", "no front point has error <= -1"),
        ("index:5", r"the front has points 0..4"),
        ("index:-1", r"the front has points 0..4"),
    ],
)
def test_bad_rules_are_one_line_user_errors(rule, message):
    with pytest.raises(UserError, match=message) as error:
        pick(FRONT, rule, OBJECTIVES)
    assert "\n" not in str(error.value)


def test_knee_needs_two_objectives():
    with pytest.raises(UserError, match="two objectives"):
        pick(FRONT, "knee", ["f_bits", "error", "latency"])


def test_load_front_refuses_a_run_without_a_finished_generation(tmp_path):
    with pytest.raises(UserError, match="no finished generation"):
        load_front(tmp_path)
    (tmp_path / "front.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        load_front(tmp_path)
    (tmp_path / "front.json").write_text("[]")
    with pytest.raises(UserError, match="no front point"):
        load_front(tmp_path)
    (tmp_path / "front.json").write_text(json.dumps({"points": []}))
    with pytest.raises(UserError, match="no front point"):
        load_front(tmp_path)
    (tmp_path / "front.json").write_text(json.dumps({"points": FRONT}))
    assert load_front(tmp_path) == FRONT
    (tmp_path / "front.json").write_text(json.dumps(FRONT))  # before it named its data
    assert load_front(tmp_path) == FRONT


@pytest.mark.parametrize("rule", ["knee", "index:0", "min-error:1"])
def test_a_stale_front_with_a_nan_point_is_refused(rule):
    stale = [*FRONT, point(0.01, float("nan"))]
    with pytest.raises(UserError, match="has error nan: .* 'evoquant plot'"):
        pick(stale, rule, OBJECTIVES)
