"""Problem names -> factories, so a config can name a built-in or a user's own factory.

The names live in ``evoquant.registry.PROBLEMS`` (mmengine's ``Registry``). Built-ins are
``Lazy`` import paths resolved on first use: naming ``digits`` must not pay for
importing torchvision. A user's model plugs in as ``package.module:factory`` without
editing evoquant, or under a name of its own with ``@register_problem(name)``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from types import UnionType
from typing import Any, Union, get_origin

from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic.errors import PydanticUserError

from evoquant.errors import UserError
from evoquant.registry import PROBLEMS, Lazy, register, unknown
from problems.base import Problem

ProblemFactory = Callable[..., Problem]

BUILTIN_PROBLEMS = {
    "digits": "problems.cnn.digits:digits_problem",
    "digits_vit": "problems.vit.digits_vit:digits_vit_problem",
    "torchvision": "problems.cnn.torchvision_models:torchvision_problem",
    "bevfusion_mini": "problems.bevfusion.mini.problem:bevfusion_mini_problem",
    "bevfusion_mmdet3d": "problems.bevfusion.mmdet3d_adapter:bevfusion_mmdet3d_problem",
}
"""Registered as ``Lazy`` import paths: the module loads when the name is first built."""

for _name, _path in BUILTIN_PROBLEMS.items():
    if _name not in PROBLEMS.module_dict:
        PROBLEMS.register_module(name=_name, module=Lazy(_path))


def register_problem(name: str) -> Callable[[ProblemFactory], ProblemFactory]:
    """Decorator: make ``factory(**args) -> Problem`` available as ``name``.

    The same as ``evoquant.registry.register(PROBLEMS, name)``; a built-in's own module
    replaces its lazy stand-in, any other factory under a taken name is refused.
    """
    return register(PROBLEMS, name)


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
    """The factory registered as ``name`` (a built-in imported now), or at an import path."""
    part = PROBLEMS.module_dict.get(name)
    if isinstance(part, Lazy):
        return _import_factory(part.path)
    if part is not None:
        return part
    if ":" in name:
        return _import_factory(name)
    raise UserError(str(unknown(PROBLEMS, name, " or 'package.module:factory'")))


def _signature(factory: ProblemFactory) -> inspect.Signature | None:
    """The factory's signature with its annotations evaluated where they can be.

    String annotations (``from __future__ import annotations``) that name something
    the factory's module does not define at run time are left as strings, and a
    callable without a signature (some builtins) gives None: neither is checked.
    """
    try:
        return inspect.signature(factory, eval_str=True)
    except (NameError, AttributeError, SyntaxError, TypeError, ValueError):
        try:
            return inspect.signature(factory)
        except (TypeError, ValueError):
            return None


_ARBITRARY = ConfigDict(arbitrary_types_allowed=True)


def _adapter(annotation: Any) -> TypeAdapter | None:
    """A pydantic validator for one annotation; None where there is nothing to check."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return None
    try:
        return TypeAdapter(annotation, config=_ARBITRARY)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError, NameError):
        return None


def validate_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` checked against the named factory's signature, as it will be called.

    An argument the factory does not take, or one of the wrong type for its
    annotation, is a one-line UserError naming it. Types are read by pydantic in its
    lax mode and the factory gets the values as read: ``"64"`` for an ``int``
    becomes 64, a ``float`` given 2 gets 2.0. Nothing is called, so this can refuse a
    config before a run writes anything.
    """
    factory = get_factory(name)
    args = dict(args)
    signature = _signature(factory)
    if signature is None:
        return args
    try:
        signature.bind(**args)
    except TypeError as exc:
        raise UserError(
            f"problem {name!r} rejects arguments {sorted(args)}: {exc}"
        ) from exc
    params = signature.parameters
    var_keyword = next(
        (p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None
    )
    validated = {}
    for key, value in args.items():
        param = params.get(key)
        if param is None or param.kind is inspect.Parameter.VAR_KEYWORD:
            param = var_keyword
        adapter = None if param is None else _adapter(param.annotation)
        if adapter is None:
            validated[key] = value
            continue
        try:
            result = adapter.validate_python(value)
            if isinstance(result, Iterator) and not isinstance(value, Iterator):
                list(result)  # an Iterable annotation validates lazily: check it all
                result = value  # and leave the factory the list it was given
        except PydanticValidationError as exc:
            raise UserError(
                f"problem {name!r}: argument {key}{_describe(exc, param.annotation)}"
            ) from None
        validated[key] = result
    return validated


def _describe(exc: PydanticValidationError, annotation: Any) -> str:
    """``[where]: message`` of one wrong argument; a union's alternatives joined by "or"."""
    errors = exc.errors()
    if get_origin(annotation) in (Union, UnionType) and len(errors) > 1:
        # no member fits, and each error's location is the member's name
        return ": " + " or ".join(dict.fromkeys(e["msg"] for e in errors))
    where = "".join(f"[{part!r}]" for part in errors[0]["loc"])
    return f"{where}: {errors[0]['msg']}"


def build_problem(name: str, args: Mapping[str, Any]) -> Problem:
    """Call the named factory with ``args``, checked first by ``validate_args``.

    The arguments are checked against the signature (names and annotated types)
    before the call, so a TypeError raised inside the factory stays a bug with its
    traceback, not a user error.
    """
    factory = get_factory(name)
    problem = factory(**validate_args(name, args))
    if not isinstance(problem, Problem):
        raise UserError(
            f"problem factory {name!r} returned {type(problem).__name__}, not a Problem"
        )
    return problem
