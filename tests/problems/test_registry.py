import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from evoquant.errors import UserError
from problems import registry
from problems.base import Problem
from problems.registry import build_problem, register_problem


def tiny_problem(width: int = 2) -> Problem:
    batch = torch.ones(1, width)
    return Problem(
        "tiny", lambda: nn.Linear(width, 1), [batch], [batch], lambda m, b: m(b)
    )


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's own factory module, importable as ``user_problems``."""
    (tmp_path / "user_problems.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from problems.base import Problem

            def make(width=3):
                batch = torch.ones(1, width)
                model = lambda: nn.Linear(width, 1)
                return Problem("mine", model, [batch], [batch], lambda m, b: m(b))

            def not_a_problem():
                return 42

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
        ("nope", "unknown problem 'nope'.*digits, torchvision"),
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
