"""Calibration, fitness and validation as disjoint sets of dataset sample indices."""

import inspect

import pytest

from evoquant.errors import UserError
from problems.bevfusion.mmdet3d_adapter import (
    ROLES,
    bevfusion_mmdet3d_problem,
    split_samples,
)

NUSCENES_VAL = 6019


def test_defaults_on_nuscenes_val_are_disjoint():
    defaults = inspect.signature(bevfusion_mmdet3d_problem).parameters
    samples = split_samples(
        {role: defaults[role].default for role in ROLES}, NUSCENES_VAL
    )
    calibration, fitness, validation = samples.values()
    assert (len(calibration), len(fitness), len(validation)) == (21, 20, 40)
    assert calibration[:3] == (0, 300, 600) and fitness[:2] == (150, 450)
    assert validation[:3] == (75, 225, 375) and validation[-1] == 5925


def test_rest_is_every_sample_the_others_leave():
    samples = split_samples(
        {"calibration": "0::300", "fitness": "150::300", "validation": "rest"},
        NUSCENES_VAL,
    )
    calibration, fitness, validation = samples.values()
    assert len(validation) == NUSCENES_VAL - 41
    assert sorted(calibration + fitness + validation) == list(range(NUSCENES_VAL))


def test_slices_follow_python_and_lists_are_kept_in_order():
    samples = split_samples(
        {"calibration": [6, 2], "fitness": "-3:", "validation": "3:6"}, 10
    )
    assert samples == {
        "calibration": (6, 2),
        "fitness": (7, 8, 9),
        "validation": (3, 4, 5),
    }


@pytest.mark.parametrize(
    "specs, message",
    [
        (
            {"calibration": "0:4", "fitness": "2:6", "validation": []},
            (
                r"^problem.args.calibration and problem.args.fitness share 2 "
                r"sample\(s\) \(e.g. 2, 3\): calibration, fitness, validation "
                r"samples must be disjoint$"
            ),
        ),
        (
            {"calibration": "0:2", "fitness": "2:4", "validation": [1, 5]},
            "calibration and problem.args.validation share 1",
        ),
        (
            {"calibration": "rest", "fitness": "0:2", "validation": "rest"},
            "only one of problem.args.calibration, problem.args.validation may",
        ),
        (
            {"calibration": "0:2", "fitness": "8:", "validation": [10]},
            r"problem.args.validation: index 10 is not one of the dataset's 10 samples",
        ),
        (
            {"calibration": [1, 1], "fitness": "8:", "validation": []},
            "problem.args.calibration lists sample 1 more than once",
        ),
        (
            {"calibration": "0:2", "fitness": "20:", "validation": []},
            "problem.args.fitness selects none of the dataset's 10 samples",
        ),
        (
            {"calibration": "first", "fitness": "2:", "validation": []},
            "problem.args.calibration 'first' is not 'rest', 'start:stop:step'",
        ),
        (
            {"calibration": "::0", "fitness": "2:", "validation": []},
            "problem.args.calibration '::0' is not",
        ),
    ],
)
def test_mistakes_are_one_line(specs, message):
    with pytest.raises(UserError, match=message) as error:
        split_samples(specs, 10)
    assert "\n" not in str(error.value)


def test_rest_may_be_empty_for_validation():
    samples = split_samples(
        {"calibration": "0:5", "fitness": "5:", "validation": "rest"}, 10
    )
    assert samples["validation"] == ()
