"""Every part a config chooses by name, in one kind of table: mmengine's ``Registry``.

A part registers itself where it is defined; a config names it, and the config check
lists the registered names when it does not know one. A part of the user's own is one
decorator away, in a module the config's ``custom_imports`` names::

    from evoquant.registry import MUTATIONS

    @MUTATIONS.register_module("my_mutation")
    class MyMutation(pymoo.core.mutation.Mutation): ...

What each registry holds, and how it is called:

* ``PROBLEMS``: ``factory(**problem.args) -> Problem``. Built-ins are ``Lazy`` import
  paths, resolved on first use (naming ``digits`` must not import torchvision); a
  user's factory is also reachable as ``package.module:factory`` without registering.
* ``MUTATIONS``: ``cls(prob_var=search.mutation_prob)``, a pymoo ``Mutation``.
* ``CROSSOVERS``: ``cls(boundaries, prob=search.crossover_prob)``, a pymoo
  ``Crossover``; ``boundaries`` are the gene indices where a main module starts.
* ``GENE_POLICIES``: ``cls()``, a ``evoquant.space.GenePolicy``.
* ``TARGETS``: a deployment target (``evoquant.targets.Target``).
* ``RANGE_ESTIMATORS``: ``estimator(input_range, bits, scheme) -> (low, high)``.

Each registry but ``PROBLEMS`` knows the module its built-ins live in (mmengine's
``locations``), imported the first time a name is looked up. This module imports
nothing of evoquant, so every other module can import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mmengine.registry import Registry


class Lazy:
    """An import path ``package.module:attr`` standing for a registered part until used."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.__module__, _, self.__qualname__ = path.partition(":")
        self.__name__ = self.__qualname__

    def load(self) -> Any:
        module, _, attr = self.path.partition(":")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.path!r})"


def _registry(name: str, location: str | None = None) -> Registry:
    return Registry(name, scope="evoquant", locations=[location] if location else [])


PROBLEMS = _registry("problem")
MUTATIONS = _registry("mutation", "evoquant.operators")
CROSSOVERS = _registry("crossover", "evoquant.operators")
GENE_POLICIES = _registry("gene policy", "evoquant.space")
TARGETS = _registry("target", "evoquant.targets")
RANGE_ESTIMATORS = _registry("activation range estimator", "evoquant.quant.calibrate")


def names(registry: Registry) -> list[str]:
    """Every name ``registry`` holds, its built-ins imported first, sorted."""
    registry.import_from_location()
    return sorted(registry.module_dict)


class UnknownName(ValueError):
    """A name no part is registered under; the message is one line listing those that are."""


def unknown(registry: Registry, name: Any, extra: str = "") -> UnknownName:
    listed = ", ".join(names(registry))
    return UnknownName(f"unknown {registry.name} {name!r}: use one of {listed}{extra}")


def check(registry: Registry, name: Any) -> str:
    """``name`` if a part is registered under it, else ``UnknownName``."""
    if not isinstance(name, str) or name not in names(registry):
        raise unknown(registry, name)
    return name


def lookup(registry: Registry, name: str) -> Any:
    """The part registered under ``name`` (a ``Lazy`` one loaded), else ``UnknownName``.

    Read from the registry's own table, not ``Registry.get``, which would read a
    dotted name as an mmengine scope.
    """
    part = registry.module_dict.get(check(registry, name))
    return part.load() if isinstance(part, Lazy) else part


def register(registry: Registry, name: str) -> Callable[[Any], Any]:
    """Decorator: ``part`` under ``name``; the same part again (a reloaded module) is fine,
    and a part replaces the ``Lazy`` stand-in that points at it."""

    def decorate(part: Any) -> Any:
        taken = registry.module_dict.get(name)
        path = f"{getattr(part, '__module__', '')}:{getattr(part, '__qualname__', '')}"
        same = taken is None or taken is part
        same = same or (isinstance(taken, Lazy) and taken.path == path)
        if not same:
            raise ValueError(f"{registry.name} name {name!r} is already taken")
        registry.register_module(name=name, module=part, force=True)
        return part

    return decorate
