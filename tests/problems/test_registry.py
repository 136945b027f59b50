import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch
from torch import nn

from evoquant.api import Problem
from evoquant.errors import UserError
from evoquant.registry import PROBLEMS
from problems import registry
from problems.registry import build_problem, register_problem


def tiny_problem(width: int = 2) -> Problem:
    batch = torch.ones(1, width)
    return Problem(
        "tiny", lambda: nn.Linear(width, 1), [batch], [batch], lambda m, b: m(b)
    )


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    monkeypatch.setattr(PROBLEMS, "_module_dict", dict(PROBLEMS.module_dict))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's own factory module, importable as ``user_problems``."""
    (tmp_path / "user_problems.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from evoquant.api import Problem

            def make(width=3):
                batch = torch.ones(1, width)
                model = lambda: nn.Linear(width, 1)
                return Problem("mine", model, [batch], [batch], lambda m, b: m(b))

            def not_a_problem():
                return 42

            def sized(width: int = 3, scale: float = 1.0):
                return make(width)

            broken = "not callable"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("user_problems", None)


def test_register_and_build_with_args():
    register_problem("tiny")(tiny_problem)
    problem = build_problem("tiny", {"width": 5})
    assert problem.name == "tiny"
    assert problem.calibration_batches[0].shape == (1, 5)


def test_registering_a_taken_name_fails():
    register_problem("tiny")(tiny_problem)
    register_problem("tiny")(tiny_problem)  # same factory again is fine
    with pytest.raises(ValueError, match="already taken"):
        register_problem("tiny")(lambda: None)
    with pytest.raises(ValueError, match="already taken"):
        register_problem("digits")(tiny_problem)


def test_import_path(user_module):
    problem = build_problem("user_problems:make", {"width": 4})
    assert problem.name == "mine"
    assert problem.fitness_batches[0].shape == (1, 4)


def test_builtin_names_resolve_lazily():
    assert registry.get_factory("digits").__name__ == "digits_problem"
    assert registry.get_factory("torchvision").__name__ == "torchvision_problem"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "unknown problem 'nope'.*digits, digits_vit, torchvision"),
        (
            "no_such_module_xyz:make",
            "cannot import problem module 'no_such_module_xyz'",
        ),
        (
            "user_problems:missing",
            "module 'user_problems' has no problem factory 'missing'",
        ),
        ("user_problems:broken", "has no problem factory 'broken'"),
        ("user_problems:", "must look like 'package.module:factory'"),
        ("user_problems:not_a_problem", "returned int, not a Problem"),
    ],
)
def test_bad_names_are_user_errors(user_module, name, message):
    with pytest.raises(UserError, match=message):
        build_problem(name, {})


def test_unexpected_args_are_a_user_error(user_module):
    with pytest.raises(UserError, match=r"rejects arguments \['depth'\]"):
        build_problem("user_problems:make", {"depth": 3})


def test_type_error_inside_a_factory_is_not_hidden():
    def buggy() -> Problem:
        raise TypeError("bug in the factory")

    register_problem("buggy")(buggy)
    with pytest.raises(TypeError, match="bug in the factory"):
        build_problem("buggy", {})


def test_importing_the_registry_does_not_import_torchvision():
    code = "import sys, problems.registry; assert 'torchvision' not in sys.modules"
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2]
    )


def typed_problem(
    width: int = 2,
    scale: float = 1.0,
    label: str | None = None,
    sizes: list[int] | None = None,
    mode: int | str = 0,
    **extra: int,
) -> Problem:
    typed_problem.calls.append(
        {"width": width, "scale": scale, "sizes": sizes, "mode": mode} | extra
    )
    return tiny_problem(width)


typed_problem.calls = []


@pytest.fixture
def typed():
    typed_problem.calls.clear()
    register_problem("typed")(typed_problem)
    return typed_problem.calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"width": "abc"},
            (
                "problem 'typed': argument width: Input should be a valid integer, "
                "unable to parse string as an integer"
            ),
        ),
        (
            {"width": [4]},
            "problem 'typed': argument width: Input should be a valid integer",
        ),
        (
            {"width": 2.5},
            "argument width: Input should be a valid integer, got a number",
        ),
        ({"scale": "big"}, "argument scale: Input should be a valid number"),
        ({"label": 3}, "argument label: Input should be a valid string"),
        ({"sizes": [1, "x"]}, "argument sizes[1]: Input should be a valid integer"),
        (
            {"mode": [1]},
            "argument mode: Input should be a valid integer or Input should be a valid string",
        ),
        ({"depth": "x"}, "argument depth: Input should be a valid integer"),
    ],
)
def test_wrong_argument_types_are_one_line_user_errors(typed, args, message):
    with pytest.raises(UserError) as caught:
        build_problem("typed", args)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert typed == []  # the factory was never called


def test_arguments_reach_the_factory_as_annotated(typed):
    build_problem("typed", {"width": "4", "scale": 2, "sizes": [1, 2], "depth": 3})
    assert typed == [{"width": 4, "scale": 2.0, "sizes": [1, 2], "mode": 0, "depth": 3}]
    assert isinstance(typed[0]["scale"], float)


def test_validate_args_checks_without_calling(typed):
    assert registry.validate_args("typed", {"width": 5.0}) == {"width": 5}
    assert typed == []


def test_a_builtin_factory_is_checked_by_its_annotations():
    with pytest.raises(
        UserError,
        match=r"^problem 'digits': argument batch_size: Input should be a valid integer",
    ):
        registry.validate_args("digits", {"batch_size": "abc"})
    with pytest.raises(
        UserError, match="argument batch_size: Input should be a valid integer$"
    ):
        registry.validate_args("digits", {"batch_size": [64]})
    assert registry.validate_args("digits", {"batch_size": 32}) == {"batch_size": 32}
    with pytest.raises(UserError, match=r"rejects arguments \['nope'\]"):
        registry.validate_args("digits", {"nope": 1})


def test_string_annotations_of_an_import_path_are_checked(user_module, tmp_path):
    (tmp_path / "future_problems.py").write_text(
        textwrap.dedent(
            """
            from __future__ import annotations

            from typing import TYPE_CHECKING

            from user_problems import make

            if TYPE_CHECKING:
                from somewhere import Unknown

            def typed(width: int = 3):
                return make(width)

            def unresolvable(width: int = 3, extra: Unknown | None = None):
                return make(width)
            """
        )
    )
    try:
        with pytest.raises(
            UserError, match="argument width: Input should be a valid int"
        ):
            build_problem("future_problems:typed", {"width": "wide"})
        assert build_problem("future_problems:typed", {"width": "5"}).name == "mine"
        # an annotation that cannot be evaluated leaves the arguments unchecked
        problem = build_problem("future_problems:unresolvable", {"width": 2})
        assert problem.calibration_batches[0].shape == (1, 2)
    finally:
        sys.modules.pop("future_problems", None)


def test_import_path_factory_types(user_module):
    with pytest.raises(UserError, match="'user_problems:sized': argument width"):
        build_problem("user_problems:sized", {"width": "x"})
    assert build_problem("user_problems:sized", {"width": 4.0}).name == "mine"


def test_iterable_annotations_are_checked_and_passed_as_given():
    seen = []

    def listing(sizes: Iterable[int] = ()) -> Problem:
        seen.append(sizes)
        return tiny_problem()

    register_problem("listing")(listing)
    with pytest.raises(
        UserError, match=r"argument sizes\[1\]: Input should be a valid int"
    ):
        build_problem("listing", {"sizes": [1, "x"]})
    build_problem("listing", {"sizes": [1, 2]})
    assert seen == [[1, 2]]


def test_unannotated_and_unusual_annotations_are_not_checked():
    class Device:
        pass

    def odd(device: Device | None = None, anything=None) -> Problem:
        assert anything == {"a": [1]}
        return tiny_problem()

    register_problem("odd")(odd)
    assert build_problem("odd", {"anything": {"a": [1]}}).name == "tiny"
    with pytest.raises(UserError, match="argument device"):
        build_problem("odd", {"device": "cuda"})


def test_type_error_inside_a_typed_factory_is_not_hidden():
    def buggy(width: int = 1) -> Problem:
        raise TypeError("bug in the factory")

    register_problem("buggy")(buggy)
    with pytest.raises(TypeError, match="bug in the factory"):
        build_problem("buggy", {"width": 3})
