"""Module surgery: mmdet's Swin ``WindowMSA`` with its two attention products as layers.

mmdet writes q·kᵀ and attn·v as plain ``@``, which evoquant cannot hook
(docs/method.md), yet the thesis genome quantizes both (``attn.w_msa.q_k_matmul`` and
``attn.w_msa.attn_v_matmul``). The surgery gives every ``WindowMSA`` two
``QuantMatMul`` children under those names and a forward that calls them. The forward
performs the same tensor operations in the same order as mmdet's (mmdet 3.3.0,
``mmdet/models/backbones/swin.py``), so FP32 outputs stay bit-identical; the weights
and the state dict are untouched (a ``QuantMatMul`` has no parameters).
"""

from __future__ import annotations

from torch import Tensor, nn

from evoquant.errors import UserError
from evoquant.quant.matmul import QuantMatMul

_ROUTED: dict[type, type] = {}
"""mmdet's class -> its subclass with the routed forward (made once per class)."""


def _routed_forward(self: nn.Module, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """mmdet's ``WindowMSA.forward``, its two ``@`` replaced by QuantMatMul layers."""
    windows_batch, tokens, channels = x.shape
    heads = self.num_heads
    qkv = (
        self.qkv(x)
        .reshape(windows_batch, tokens, 3, heads, channels // heads)
        .permute(2, 0, 3, 1, 4)
    )
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = self.q_k_matmul(q * self.scale, k.transpose(-2, -1))
    area = self.window_size[0] * self.window_size[1]
    bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
    bias = bias.view(area, area, -1).permute(2, 0, 1).contiguous()
    attn = attn + bias.unsqueeze(0)
    if mask is not None:
        windows = mask.shape[0]
        attn = attn.view(
            windows_batch // windows, windows, heads, tokens, tokens
        ) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, tokens, tokens)
    attn = self.attn_drop(self.softmax(attn))
    out = (
        self.attn_v_matmul(attn, v)
        .transpose(1, 2)
        .reshape(windows_batch, tokens, channels)
    )
    return self.proj_drop(self.proj(out))


def _routed_class(cls: type) -> type:
    if cls not in _ROUTED:
        _ROUTED[cls] = type(
            f"MatMul{cls.__name__}",
            (cls,),
            {"forward": _routed_forward, "__module__": __name__},
        )
    return _ROUTED[cls]


def mmdet_window_msa() -> type[nn.Module]:
    """mmdet's ``WindowMSA`` class; a missing mmdet is one line."""
    try:
        from mmdet.models.backbones.swin import WindowMSA
    except ImportError as error:
        raise UserError(
            f"mmdet's Swin backbone cannot be imported ({error}): install the "
            "[bevfusion] extra (docs/bevfusion.md)"
        ) from None
    return WindowMSA


def route_window_attention(
    model: nn.Module, window_msa: type[nn.Module] | None = None
) -> int:
    """Route every ``window_msa`` (default mmdet's) through QuantMatMul layers.

    Returns how many modules were changed; a module that already has a
    ``q_k_matmul`` layer (routed before, or written with them like the mini
    testbed's) is left alone. The children are added after the module's own, so
    the genome order inside a block is qkv, proj, q_k_matmul, attn_v_matmul, as in
    the thesis.
    """
    cls = window_msa or mmdet_window_msa()
    changed = 0
    for module in model.modules():
        if not isinstance(module, cls) or isinstance(
            getattr(module, "q_k_matmul", None), QuantMatMul
        ):
            continue
        module.q_k_matmul = QuantMatMul()
        module.attn_v_matmul = QuantMatMul()
        module.__class__ = _routed_class(type(module))
        changed += 1
    return changed
