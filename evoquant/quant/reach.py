"""Dead layers: quantizable layers whose output never reaches the problem's outputs.

A model may compute more than the problem reads (BERT's pooler when the problem
takes ``last_hidden_state``, an auxiliary head): a gene for such a layer costs bits
and search effort and changes nothing. One forward under autograd tells which layer
outputs the problem's outputs depend on: the autograd graph from the outputs back
reaches every node that fed them, and no other. Only the graph is walked; nothing is
differentiated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from evoquant.quant.attention import weights_require_grad
from evoquant.quant.layers import Layer
from evoquant.quant.table import tensors_in


def _graph_nodes(outputs: Any) -> set[Any] | None:
    """Every autograd node the output tensors were computed through; None without any."""
    stack = [t.grad_fn for t in tensors_in(outputs) if t.grad_fn is not None]
    if not stack:
        return None
    seen: set[Any] = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return seen


def unreached_layers(
    model: nn.Module,
    layers: Sequence[Layer],
    run: Callable[[nn.Module, Any], Any],
    batch: Any,
) -> list[str] | None:
    """Names of the layers that ran on ``batch`` but that ``run``'s outputs do not use.

    A layer that did not run, or whose output has no autograd graph (it depends on
    no weight), is not judged. None when the outputs have no graph at all (``run``
    detaches them, works under ``no_grad`` or returns only integers): then nothing
    can be told.
    """
    modules = dict(model.named_modules())
    produced: dict[str, list[Any]] = {layer.name: [] for layer in layers}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            if isinstance(output, Tensor) and output.grad_fn is not None:
                produced[name].append(output.grad_fn)

        return hook

    handles = [
        modules[layer.name].register_forward_hook(record(layer.name))
        for layer in layers
    ]
    try:
        with weights_require_grad(model):
            reached = _graph_nodes(run(model, batch))
    finally:
        for handle in handles:
            handle.remove()
    if reached is None:
        return None
    return [
        name
        for name, nodes in produced.items()
        if nodes and not any(node in reached for node in nodes)
    ]
