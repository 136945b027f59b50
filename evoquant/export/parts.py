"""Which sub-networks become ONNX graphs, which layers each holds, and what each sees on real data.

A part's example inputs are not declared but captured: its module's calls are
recorded while the problem's ``run`` processes batches, so export and validation use
exactly what the part receives inside the model (after any upstream quantization,
before the part's own layers quantize it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from evoquant.errors import UserError
from evoquant.export.axes import bind, named_tensors
from evoquant.problem import ExportPart
from evoquant.quant.layers import Layer

WHOLE_MODEL = ExportPart("model", "")


@dataclass(frozen=True)
class Part:
    """An exported sub-network: its declaration, its module and the layers inside it."""

    spec: ExportPart
    module: nn.Module
    layers: tuple[Layer, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    def relative(self, layer: str) -> str:
        """A layer's dotted path inside the part (its name in the part's ONNX graph)."""
        prefix = self.spec.module
        return layer if not prefix else layer[len(prefix) :].removeprefix(".")

    def inputs(self, call: Call) -> dict[str, Tensor]:
        """The call's tensors under the names of the part's graph inputs."""
        return named_tensors(bind(self.module, call.args, call.kwargs))


@dataclass(frozen=True)
class Call:
    """One call of a part's module: its inputs and its output."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any


def _inside(layer: str, module: str) -> bool:
    return not module or layer == module or layer.startswith(module + ".")


def resolve_parts(
    model: nn.Module, specs: Sequence[ExportPart], layers: Sequence[Layer]
) -> list[Part]:
    """The declared parts (or the whole model), each with its layers; overlaps are refused."""
    specs = list(specs) or [WHOLE_MODEL]
    modules = dict(model.named_modules())
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise UserError(f"export parts must have distinct names, got {names}")
    for spec in specs:
        if spec.module not in modules:
            raise UserError(
                f"export part {spec.name}: the model has no module {spec.module!r}"
            )
        for other in specs:
            if other is not spec and _inside(other.module, spec.module):
                raise UserError(
                    f"export parts {spec.name} and {other.name} overlap: a module may be in one part"
                )
    return [
        Part(
            spec,
            modules[spec.module],
            tuple(layer for layer in layers if _inside(layer.name, spec.module)),
        )
        for spec in specs
    ]


def tensors(value: Any) -> list[Tensor]:
    """The tensors in nested tuples, lists and dicts, in the order torch.export flattens them."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors(item)]
    return []


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(item) for item in value)
    return value


@contextmanager
def _recording(module: nn.Module, found: list[Call]) -> Iterator[None]:
    """Record every call of ``module``, through ``module(...)`` or ``module.forward(...)``.

    The forward is wrapped for the capture, so a library that calls ``forward``
    directly (sentence-embedding wrappers call ``self.bert.forward``) is seen too. A
    call through ``module(...)`` is recorded as the pre-hook (first of all) saw it:
    before the part's own input quantizer, when the part is a quantized layer.
    """
    entered: list[tuple[tuple, dict]] = []
    own = module.__dict__.get("forward")
    original = module.forward

    def before(_module, args, kwargs):
        entered.append((_clone(args), _clone(kwargs)))

    def forward(*args, **kwargs):
        inputs = entered.pop() if entered else (_clone(args), _clone(kwargs))
        output = original(*args, **kwargs)
        found.append(Call(*inputs, _clone(output)))
        return output

    handle = module.register_forward_pre_hook(before, with_kwargs=True, prepend=True)
    module.forward = forward
    try:
        yield
    finally:
        handle.remove()
        if own is None:
            del module.forward
        else:
            module.forward = own


@contextmanager
def _inner_calls(module: nn.Module, ran: list[str]) -> Iterator[None]:
    """Note which modules directly inside ``module`` ran: the reason a part went unseen."""
    handles = [
        child.register_forward_pre_hook(lambda *_, name=name: ran.append(name))
        for name, child in module.named_children()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _never_ran(part: Part, inner: Sequence[str]) -> UserError:
    where = f"export part {part.name}: module {part.spec.module or '(model)'!r}"
    kind = type(part.module).__name__
    if inner:
        return UserError(
            f"{where} ({kind}) never ran on the fitness batches, yet {inner[0]!r} inside "
            f"it did: its code is run without calling the module or its forward (e.g. "
            f"{kind}.forward(module, ...)); declare a module that is called instead"
        )
    return UserError(
        f"{where} ({kind}) and every module inside it never ran on the fitness "
        "batches: the problem's run does not use it"
    )


def capture_calls(
    model: nn.Module,
    run: Callable[[nn.Module, Any], Any],
    batches: Sequence[Any],
    parts: Sequence[Part],
) -> dict[str, list[Call]]:
    """Every call of each part while ``run`` processes ``batches``, inputs and outputs copied."""
    calls: dict[str, list[Call]] = {part.name: [] for part in parts}
    inner: dict[str, list[str]] = {part.name: [] for part in parts}
    with ExitStack() as stack:
        for part in parts:
            stack.enter_context(_recording(part.module, calls[part.name]))
            stack.enter_context(_inner_calls(part.module, inner[part.name]))
        with torch.no_grad():
            for batch in batches:
                run(model, batch)
    for part in parts:
        if not calls[part.name]:
            raise _never_ran(part, inner[part.name])
    return calls
