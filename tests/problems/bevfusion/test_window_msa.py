"""The WindowMSA surgery keeps FP32 outputs bit-identical and names the thesis's layers.

mmdet is not installed here, so ``StandInWindowMSA`` has the constructor signature,
attributes and forward of mmdet's ``WindowMSA`` as read in mmdet 3.3.0
(``mmdet/models/backbones/swin.py`` of the PyPI wheel; the forward is unchanged from
GitHub open-mmlab/mmdetection ``2a643e47``): ``@`` for q·kᵀ and attn·v, the
relative-position bias gathered from ``relative_position_index``, ``softmax`` and
dropout modules. The test compares its own forward with the surgered one bit for bit;
the same tests run on mmdet's class when mmdet is importable.
"""

import importlib.util

import pytest
import torch
from torch import nn

from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from evoquant.quant.matmul import QuantMatMul
from problems.bevfusion.window_msa import mmdet_window_msa, route_window_attention


class StandInWindowMSA(nn.Module):
    """mmdet's WindowMSA: same ``__init__`` signature and forward."""

    def __init__(
        self,
        embed_dims,
        num_heads,
        window_size,
        qkv_bias=True,
        qk_scale=None,
        attn_drop_rate=0.0,
        proj_drop_rate=0.0,
        init_cfg=None,
    ):
        super().__init__()
        self.embed_dims = embed_dims
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (embed_dims // num_heads) ** -0.5
        self.init_cfg = init_cfg
        wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        rows = torch.arange(0, (2 * ww - 1) * wh, 2 * ww - 1)
        coords = (rows[:, None] + torch.arange(ww)[None, :]).reshape(1, -1)
        self.register_buffer(
            "relative_position_index", (coords + coords.T).flip(1).contiguous()
        )
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x, mask=None):
        B, N, C = x.shape
        qkv = (
            self.qkv(x)
            .reshape(B, N, 3, self.num_heads, C // self.num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        area = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)
        ].view(area, area, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B // nW, nW, self.num_heads, N, N) + mask.unsqueeze(
                1
            ).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.attn_drop(self.softmax(attn))
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


CLASSES = [StandInWindowMSA]
if importlib.util.find_spec("mmdet") is not None:
    CLASSES.append(mmdet_window_msa())
IDS = ["stand-in", "mmdet"]


class Block(nn.Module):
    """Where Swin puts it: ``attn.w_msa`` beside the block's FFN."""

    def __init__(self, window_msa: type) -> None:
        super().__init__()
        self.attn = nn.Module()
        self.attn.w_msa = window_msa(96, 3, (7, 7))
        self.ffn = nn.Linear(96, 96)


def block(window_msa: type) -> Block:
    torch.manual_seed(0)
    model = Block(window_msa).eval()
    nn.init.normal_(model.attn.w_msa.relative_position_bias_table)
    return model


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8, 49, 96, generator=generator)
    mask = torch.where(torch.rand(4, 49, 49, generator=generator) > 0.5, -100.0, 0.0)
    return x, mask


@pytest.mark.parametrize("window_msa", CLASSES, ids=IDS[: len(CLASSES)])
def test_surgery_is_bit_identical_in_fp32(window_msa):
    model = block(window_msa)
    x, mask = inputs()
    before = [model.attn.w_msa(x), model.attn.w_msa(x, mask=mask)]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert route_window_attention(model, window_msa) == 1
    after = [model.attn.w_msa(x), model.attn.w_msa(x, mask=mask)]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert isinstance(model.attn.w_msa, window_msa)


@pytest.mark.parametrize("window_msa", CLASSES, ids=IDS[: len(CLASSES)])
def test_products_are_named_layers_in_thesis_order(window_msa):
    model = block(window_msa)
    route_window_attention(model, window_msa)
    assert [(layer.name, layer.kind) for layer in find_layers(model)] == [
        ("attn.w_msa.qkv", "linear"),
        ("attn.w_msa.proj", "linear"),
        ("attn.w_msa.q_k_matmul", "matmul"),
        ("attn.w_msa.attn_v_matmul", "matmul"),
        ("ffn", "linear"),
    ]


def test_hooks_see_the_two_products_operands():
    model = block(StandInWindowMSA)
    route_window_attention(model, StandInWindowMSA)
    seen = {}
    for name in ("q_k_matmul", "attn_v_matmul"):
        getattr(model.attn.w_msa, name).register_forward_pre_hook(
            lambda module, args, name=name: seen.setdefault(name, args)
        )
    x, _ = inputs()
    model.attn.w_msa(x)
    q_scaled, k_t = seen["q_k_matmul"]
    attn, v = seen["attn_v_matmul"]
    assert q_scaled.shape == (8, 3, 49, 32) and k_t.shape == (8, 3, 32, 49)
    assert torch.allclose(attn.sum(-1), torch.ones(8, 3, 49))
    assert v.shape == (8, 3, 49, 32)


def test_surgery_is_idempotent_and_skips_modules_with_layers():
    model = block(StandInWindowMSA)
    assert route_window_attention(model, StandInWindowMSA) == 1
    first = model.attn.w_msa.q_k_matmul
    assert route_window_attention(model, StandInWindowMSA) == 0
    assert model.attn.w_msa.q_k_matmul is first
    assert isinstance(first, QuantMatMul)
    assert route_window_attention(nn.Linear(2, 2), StandInWindowMSA) == 0


@pytest.mark.skipif(
    importlib.util.find_spec("mmdet") is not None, reason="mmdet is installed"
)
def test_default_class_needs_mmdet_and_says_so():
    with pytest.raises(UserError, match=r"mmdet's Swin backbone cannot be imported"):
        route_window_attention(nn.Linear(2, 2))
