"""The problem protocol: the three data roles share no sample, export parts, and
problems built by name through the registry the engine reaches by its import path."""

import dataclasses
import logging
import sys
import textwrap

import pytest
import torch

from evoquant.errors import UserError
from evoquant.problem import (
    BATCH_AXIS,
    ExportPart,
    Problem,
    build_problem,
    role_overlaps,
    sample_fingerprints,
    validate_args,
)


def images(count: int, seed: int) -> torch.Tensor:
    return torch.randn(count, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def make(calibration, fitness, validation=()) -> Problem:
    return Problem(
        "roles", torch.nn.Identity, calibration, fitness, lambda m, b: m(b),
        validation_batches=validation,
    )  # fmt: skip


def test_disjoint_roles_pass_silently(caplog):
    with caplog.at_level(logging.WARNING):
        problem = make([images(8, 0)], [images(8, 1)], [images(8, 2)])
    assert role_overlaps(problem) == {}
    assert caplog.text == ""


def test_fitness_batches_taken_from_the_calibration_batches_are_warned_about(caplog):
    calibration = [images(8, 0), images(8, 1)]
    with caplog.at_level(logging.WARNING):
        problem = make(calibration, calibration[1:], [images(4, 2)])
    assert role_overlaps(problem) == {("calibration", "fitness"): 8}
    assert "8 fitness sample(s) are also calibration samples" in caplog.text


def test_samples_are_found_in_other_batches_and_orders():
    """The user's case: the fitness set a re-batched subset of the calibration set."""
    calibration = images(16, 0)
    fitness = [calibration[[3, 1, 9]], calibration[10:12]]
    problem = make([calibration], fitness, [torch.cat([images(2, 5), calibration[:1]])])
    assert role_overlaps(problem) == {
        ("calibration", "fitness"): 5,
        ("calibration", "validation"): 1,
    }


def test_a_sample_is_all_its_tensors():
    """Equal labels or masks alone are no shared sample; the whole sample is."""
    labels = torch.zeros(4, dtype=torch.long)
    mask = torch.ones(4, 6)
    calibration = [{"ids": torch.arange(24).view(4, 6), "mask": mask, "y": labels}]
    fitness = [{"ids": torch.arange(24, 48).view(4, 6), "mask": mask, "y": labels}]
    assert role_overlaps(make(calibration, fitness)) == {}
    again = [{"ids": torch.arange(6).view(1, 6), "mask": mask[:1], "y": labels[:1]}]
    assert role_overlaps(make(calibration, fitness, again)) == {
        ("calibration", "validation"): 1
    }


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int8])
def test_fingerprints_read_every_dtype(dtype):
    batch = (images(4, 0) * 10).to(dtype)
    assert len(sample_fingerprints([batch])) == 4
    assert not sample_fingerprints([batch]) & sample_fingerprints([batch.float()])


def test_batches_without_tensors_have_no_samples():
    assert (
        sample_fingerprints([{"text": "a sentence"}, ["x", 3], torch.tensor(1.0)])
        == set()
    )


def test_each_problem_gets_its_own_copy_of_the_default_axes():
    first, second = make([images(1, 0)], [images(1, 1)]), make([], [])
    assert first.dynamic_axes == BATCH_AXIS
    first.dynamic_axes["*ids"] = {1: "sequence"}
    assert second.dynamic_axes == BATCH_AXIS == {"*": {0: "batch"}}


def test_an_export_part_is_a_frozen_value():
    part = ExportPart("encoder", "backbone.encoder")
    assert part == ExportPart("encoder", "backbone.encoder")
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.module = "head"


@pytest.fixture
def user_factory(tmp_path, monkeypatch):
    """A user's factory module, importable as ``problem_user_module``."""
    (tmp_path / "problem_user_module.py").write_text(
        textwrap.dedent(
            """
            import torch
            from evoquant.api import Problem

            def make(width: int = 3):
                batch = torch.ones(1, width)
                return Problem("mine", torch.nn.Identity, [batch], [], lambda m, b: m(b))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "problem_user_module:make"
    sys.modules.pop("problem_user_module", None)


def test_problems_are_built_by_import_path_through_the_registry(user_factory):
    problem = build_problem(user_factory, {"width": "4"})
    assert isinstance(problem, Problem) and problem.name == "mine"
    assert problem.calibration_batches[0].shape == (1, 4)


def test_arguments_are_checked_by_name_without_building():
    assert validate_args("digits", {"batch_size": "32"}) == {"batch_size": 32}
    with pytest.raises(UserError, match="unknown problem 'nope'"):
        validate_args("nope", {})
