"""Problem names -> factories, so a config can name a built-in or a user's own factory.

Built-ins are import paths resolved on first use: naming ``digits`` must not pay for
importing torchvision, and a user's model plugs in as ``package.module:factory``
without editing evoquant.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from evoquant.errors import UserError
from problems.base import Problem

ProblemFactory = Callable[..., Problem]

BUILTIN_PROBLEMS = {
    "digits": "problems.cnn.digits:digits_problem",
    "torchvision": "problems.cnn.torchvision_models:torchvision_problem",
    "bevfusion_mini": "problems.bevfusion.mini.problem:bevfusion_mini_problem",
}

_REGISTERED: dict[str, ProblemFactory] = {}


def register_problem(name: str) -> Callable[[ProblemFactory], ProblemFactory]:
    """Decorator: make ``factory(**args) -> Problem`` available as ``name``."""

    def decorate(factory: ProblemFactory) -> ProblemFactory:
        path = f"{factory.__module__}:{factory.__qualname__}"
        taken = _REGISTERED.get(name)
        if (taken is not None and taken is not factory) or BUILTIN_PROBLEMS.get(
            name, path
        ) != path:
            raise ValueError(f"problem name {name!r} is already taken")
        _REGISTERED[name] = factory
        return factory

    return decorate


def _import_factory(path: str) -> ProblemFactory:
    """``package.module:factory`` -> the factory; every failure is one UserError."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UserError(
            f"problem import path {path!r} must look like 'package.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as exc:
        raise UserError(f"cannot import problem module {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"module {module_name!r} has no problem factory {attr!r}")
    return factory


def get_factory(name: str) -> ProblemFactory:
    """The factory for a registered name, a built-in name or an import path."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN_PROBLEMS:
        return _import_factory(BUILTIN_PROBLEMS[name])
    if ":" in name:
        return _import_factory(name)
    known = ", ".join(sorted({*BUILTIN_PROBLEMS, *_REGISTERED}))
    raise UserError(
        f"unknown problem {name!r}: use one of {known} or 'package.module:factory'"
    )


def build_problem(name: str, args: dict[str, Any]) -> Problem:
    """Call the named factory with ``args``; arguments it does not take are a UserError.

    The arguments are checked against the signature before the call, so a TypeError
    raised inside the factory stays a bug with its traceback, not a user error.
    """
    factory = get_factory(name)
    try:
        inspect.signature(factory).bind(**args)
    except TypeError as exc:
        raise UserError(
            f"problem {name!r} rejects arguments {sorted(args)}: {exc}"
        ) from exc
    problem = factory(**args)
    if not isinstance(problem, Problem):
        raise UserError(
            f"problem factory {name!r} returned {type(problem).__name__}, not a Problem"
        )
    return problem
