"""Attention products in a model's own code, made quantizable layers without editing it.

Models compute attention with ``torch.nn.functional.scaled_dot_product_attention`` or
with ``torch.matmul`` / ``@`` / ``torch.bmm`` between two activations; neither is a
module, so neither has a layer name, a hook or a gene. ``discover_attention`` runs the
model once on a batch under a ``TorchFunctionMode`` that knows which module is
running, and gives every module that makes such a call a ``QuantMatMul`` child per
product: ``q_k_matmul`` and ``attn_v_matmul`` for each fused attention call (as the
thesis's Swin names them), ``matmul_0``, ``matmul_1``, ... for plain products, in the
order their call sites first ran. From then on a mode is active during each forward
of those modules and routes each call site through its children, so calibration, the
alpha search, the table, ``QuantizedModel`` and ONNX export all see ordinary modules.

Fused attention is replaced by its math-path decomposition (q·kᵀ·scale, mask,
softmax, dropout, ·v), equal to the fused kernel within float rounding.
``nn.MultiheadAttention`` takes its slow path under a mode (its fast path refuses
tensors with a torch function) and so shows its products like any other module.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from evoquant.quant.matmul import QuantMatMul

SDPA = F.scaled_dot_product_attention
MATMULS = (torch.matmul, Tensor.matmul, Tensor.__matmul__, torch.bmm, Tensor.bmm)
RMATMUL = Tensor.__rmatmul__
BADDBMMS = (torch.baddbmm, Tensor.baddbmm)
PRODUCTS = (SDPA, *MATMULS, RMATMUL, *BADDBMMS)
"""The calls that become layers."""
ATTENTION_NAMES = ("q_k_matmul", "attn_v_matmul")
DISCOVERED = "_evoquant_attention"
"""Set on a model once ``discover_attention`` ran: the names of the layers it added."""

_TORCH = Path(torch.__file__).parent
_PASS_THROUGH = {
    str(Path(__file__)),
    str(_TORCH / "overrides.py"),
    str(_TORCH / "_tensor.py"),
}
"""Frames between a call site and the mode: this module and torch's dispatch wrappers."""

Site = tuple[types.CodeType, int]
"""Where a product is called: the calling frame's code and bytecode offset."""


def _call_site() -> Site:
    frame = sys._getframe(1)
    while frame.f_code.co_filename in _PASS_THROUGH:
        frame = frame.f_back
    return frame.f_code, frame.f_lasti


def _mha_forward_with_modes() -> Callable[..., Any]:
    """``F.multi_head_attention_forward`` without its torch-function check.

    A mode sees that Python function as one call and would run its body with modes
    off, hiding the ``bmm``/attention calls inside; this copy (same code, its check
    answering no) runs the body with the modes on, and cannot recurse into them.
    """
    func = F.multi_head_attention_forward
    scope = dict(func.__globals__, has_torch_function=lambda *_: False)
    clone = types.FunctionType(
        func.__code__, scope, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__kwdefaults__ = func.__kwdefaults__
    return clone


_MHA_FORWARD = _mha_forward_with_modes()


class _InsideMode(TorchFunctionMode):
    """A mode that also sees the products inside ``nn.MultiheadAttention``."""

    def handle(self, func, args: tuple, kwargs: dict) -> Any:
        return func(*args, **kwargs)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.multi_head_attention_forward:
            with self:
                return _MHA_FORWARD(*args, **kwargs)
        return self.handle(func, args, kwargs)


def _operands(func, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """The two factors of a plain product, in the order they multiply."""
    if func is RMATMUL:
        return args[1], args[0]
    if func in BADDBMMS:
        return _arg(args, kwargs, 1, "batch1"), _arg(args, kwargs, 2, "batch2")
    return _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "other", "mat2")


def _arg(args: tuple, kwargs: dict, index: int, *names: str) -> Any:
    if index < len(args):
        return args[index]
    return next((kwargs[name] for name in names if name in kwargs), None)


_LAYOUT_NODES = {
    "TBackward0",
    "TransposeBackward0",
    "PermuteBackward0",
    "ViewBackward0",
    "UnsafeViewBackward0",
    "ReshapeAliasBackward0",
    "ExpandBackward0",
    "UnsqueezeBackward0",
    "SqueezeBackward0",
    "SqueezeBackward1",
    "CloneBackward0",
    "ToCopyBackward0",
}
"""Autograd nodes that only re-lay out a tensor: a weight through them is still a weight."""


def _is_activation(value: Any) -> bool:
    """Computed by the model from its weights and data, not a weight (or a view of one).

    Run under autograd with every weight requiring grad: a tensor without a graph
    does not depend on a weight (a camera matrix, a mask), one whose graph is only
    layout changes down to a single weight is that weight (``x @ self.w.t()``).
    """
    if not isinstance(value, Tensor) or isinstance(value, nn.Parameter):
        return False
    if not value.is_floating_point() or value.grad_fn is None:
        return False
    node = value.grad_fn
    while node is not None and type(node).__name__ in _LAYOUT_NODES:
        inputs = [fn for fn, _ in node.next_functions if fn is not None]
        node = inputs[0] if len(inputs) == 1 else None
    return node is None or type(node).__name__ != "AccumulateGrad"


@dataclass(frozen=True)
class _Route:
    """One call site of a module: which of its QuantMatMul children compute it."""

    names: tuple[str, ...]

    def __call__(self, module: nn.Module, func, args: tuple, kwargs: dict) -> Any:
        products = [getattr(module, name) for name in self.names]
        if func is SDPA:
            return attention(*products, *args, **kwargs)
        a, b = _operands(func, args, kwargs)
        product = products[0](a, b)
        if func in BADDBMMS:
            beta = kwargs.get("beta", 1)
            alpha = kwargs.get("alpha", 1)
            return beta * args[0] + alpha * product
        return product


def attention(
    q_k: nn.Module,
    attn_v: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``scaled_dot_product_attention`` with its two products computed by ``q_k`` and ``attn_v``.

    The math path: ``softmax(q·kᵀ·scale + mask)``, dropout when ``dropout_p`` asks for
    it (as the fused call, whatever the module's mode), times v; a row that every key
    is masked from gives zeros, as the fused kernels do. ``enable_gqa`` repeats each
    key/value head for its group of query heads.
    """
    if enable_gqa:
        groups = query.size(-3) // key.size(-3)
        key = key.repeat_interleave(groups, -3)
        value = value.repeat_interleave(groups, -3)
    scale = 1 / math.sqrt(query.size(-1)) if scale is None else scale
    scores = q_k(query, key.transpose(-2, -1)) * scale
    if is_causal:
        length, keys = query.size(-2), key.size(-2)
        causal = torch.ones(length, keys, dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~causal, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, -math.inf)
        else:
            scores = scores + attn_mask
    weights = torch.softmax(scores, -1)
    if is_causal or attn_mask is not None:
        masked = (scores == -math.inf).all(-1, keepdim=True)
        weights = weights.masked_fill(masked, 0.0)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return attn_v(weights, value)


class _Router(_InsideMode):
    """Active during each forward of one module: its call sites go to their layers."""

    def __init__(self, module: nn.Module, routes: dict[Site, _Route]) -> None:
        super().__init__()
        self.module = module
        self.routes = routes

    def handle(self, func, args: tuple, kwargs: dict) -> Any:
        if func in PRODUCTS:
            route = self.routes.get(_call_site())
            if route is not None:
                return route(self.module, func, args, kwargs)
        return func(*args, **kwargs)

    def enter(self, module: nn.Module, args: tuple) -> None:
        self.__enter__()

    def exit(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.__exit__(None, None, None)


class _Discovery(_InsideMode):
    """Records, per module, the call sites of products between activations."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[nn.Module] = []
        self.sites: dict[nn.Module, dict[Site, bool]] = {}
        """Per calling module, its call sites in first-run order (True: fused attention)."""

    def handle(self, func, args: tuple, kwargs: dict) -> Any:
        if func in PRODUCTS and self.stack:
            module = self.stack[-1]
            fused = func is SDPA
            if not isinstance(module, QuantMatMul) and (
                fused or all(map(_is_activation, _operands(func, args, kwargs)))
            ):
                self.sites.setdefault(module, {}).setdefault(_call_site(), fused)
        return func(*args, **kwargs)

    @contextmanager
    def tracking(self, model: nn.Module) -> Iterator[None]:
        """Keep ``stack`` the modules whose forward is running, innermost last."""

        def leave(module: nn.Module, args: tuple, output: Any) -> None:
            self.stack.pop()

        handles = []
        for module in model.modules():
            handles.append(
                module.register_forward_pre_hook(lambda m, args: self.stack.append(m))
            )
            handles.append(module.register_forward_hook(leave, always_call=True))
        try:
            with self:
                yield
        finally:
            for handle in handles:
                handle.remove()


def _free_name(module: nn.Module, base: str) -> str:
    """``base``, or ``base_1``, ``base_2``, ... where the module already has that name."""
    name, suffix = base, 0
    while hasattr(module, name):
        suffix += 1
        name = f"{base}_{suffix}"
    return name


def _attach(module: nn.Module, sites: dict[Site, bool]) -> list[str]:
    """QuantMatMul children for a module's call sites and the router that uses them."""
    routes: dict[Site, _Route] = {}
    added: list[str] = []
    attention_calls = plain_calls = 0
    for site, fused in sites.items():
        if fused:
            suffix = f"_{attention_calls}" if attention_calls else ""
            bases = [base + suffix for base in ATTENTION_NAMES]
            attention_calls += 1
        else:
            bases = [f"matmul_{plain_calls}"]
            plain_calls += 1
        names = []
        for base in bases:
            name = _free_name(module, base)
            module.add_module(name, QuantMatMul())
            names.append(name)
        routes[site] = _Route(tuple(names))
        added.extend(names)
    router = _Router(module, routes)
    module.register_forward_pre_hook(router.enter)
    module.register_forward_hook(router.exit, always_call=True)
    return added


@contextmanager
def weights_require_grad(model: nn.Module) -> Iterator[None]:
    """Autograd on, and every floating-point weight requiring grad, for one forward.

    What each tensor depends on is then readable from its graph; the weights'
    ``requires_grad`` flags are put back afterwards.
    """
    params = [p for p in model.parameters() if p.is_floating_point()]
    flags = [p.requires_grad for p in params]
    try:
        for param in params:
            param.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for param, flag in zip(params, flags):
            param.requires_grad_(flag)


def discover_attention(
    model: nn.Module, run: Callable[[nn.Module, Any], Any], batch: Any
) -> list[str]:
    """Turn the attention products ``run(model, batch)`` computes into QuantMatMul layers.

    Returns the dotted names of the layers added, in module order; a second call on
    the same model adds nothing. Explicit ``QuantMatMul`` layers are left as they are
    and the products they compute are not found again. Only products between two
    activations count: one with a weight (``x @ self.w``), or between tensors that
    depend on no weight (camera matrices of the input), is no attention.
    """
    if hasattr(model, DISCOVERED):
        return list(getattr(model, DISCOVERED))
    discovery = _Discovery()
    with weights_require_grad(model), discovery.tracking(model):
        run(model, batch)
    added = set()
    for module, sites in discovery.sites.items():
        added.update(getattr(module, name) for name in _attach(module, sites))
    names = [name for name, module in model.named_modules() if module in added]
    setattr(model, DISCOVERED, tuple(names))
    return names
