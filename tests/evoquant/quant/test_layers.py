"""Layer discovery: which modules are genes, in which order, and the glob filters."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evoquant.errors import UserError
from evoquant.quant.layers import Layer, find_layers, layer_forward, layer_kind
from evoquant.quant.matmul import QuantMatMul

TINY_LAYERS = [
    ("stem.0", "conv2d", 8 * 3 * 3 * 3),
    ("stem.2", "conv2d", 8 * 8 * 3 * 3),
    ("attn.q", "linear", 8 * 8),
    ("attn.q_k_matmul", "matmul", 0),
    ("head", "linear", 4 * 8),
]


def names(layers: list[Layer]) -> list[str]:
    return [layer.name for layer in layers]


def test_every_conv_linear_and_matmul_in_module_order(tiny_model):
    layers = find_layers(tiny_model)
    assert [(x.name, x.kind, x.num_weights) for x in layers] == TINY_LAYERS


def test_include_keeps_only_matching_layers_in_module_order(tiny_model):
    assert names(find_layers(tiny_model, include=["head", "stem.*"])) == [
        "stem.0",
        "stem.2",
        "head",
    ]
    assert names(find_layers(tiny_model, include=["*matmul"])) == ["attn.q_k_matmul"]


def test_exclude_drops_matching_layers_and_wins_over_include(tiny_model):
    assert names(find_layers(tiny_model, exclude=["attn.*"])) == [
        "stem.0",
        "stem.2",
        "head",
    ]
    kept = find_layers(tiny_model, include=["stem.*", "attn.*"], exclude=["stem.2"])
    assert names(kept) == ["stem.0", "attn.q", "attn.q_k_matmul"]
    assert find_layers(tiny_model, exclude=["*"]) == []


@pytest.mark.parametrize(
    "include, exclude, pattern",
    [
        (["backbone.*"], [], "backbone.*"),
        ([], ["stem.9"], "stem.9"),
        (["stem.*"], ["stem.1"], "stem.1"),  # a ReLU: a module, but not quantizable
        (["Stem.0"], [], "Stem.0"),  # the match is case-sensitive
    ],
)
def test_a_pattern_that_matches_no_quantizable_layer_is_a_user_error(
    tiny_model, include, exclude, pattern
):
    with pytest.raises(UserError, match="matches no quantizable layer") as error:
        find_layers(tiny_model, include=include, exclude=exclude)
    assert repr(pattern) in str(error.value)


def test_attention_out_proj_is_skipped_because_it_is_never_called():
    model = nn.ModuleDict(
        {"attn": nn.MultiheadAttention(8, 2, batch_first=True), "fc": nn.Linear(8, 2)}
    )
    assert layer_kind(model["attn"].out_proj) is None
    assert layer_kind(model["fc"]) == "linear"
    assert layer_kind(nn.ReLU()) is None and layer_kind(nn.Conv1d(2, 2, 1)) is None
    assert names(find_layers(model)) == ["fc"]


def test_main_module_and_input_axis():
    conv = Layer("img_backbone.stages.0.blocks.1.conv", "conv2d", 9)
    assert conv.main_module == "img_backbone" and conv.input_axis == 1
    assert Layer("head", "linear", 4).main_module == "head"
    assert Layer("head", "linear", 4).input_axis == -1
    assert Layer("attn.q_k_matmul", "matmul", 0).input_axis == -1


def test_layer_forward_uses_the_substitute_weight_and_bypasses_hooks():
    torch.manual_seed(0)
    conv, linear, matmul = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(4, 5), QuantMatMul()
    calls = []
    for module in (conv, linear, matmul):
        module.register_forward_hook(lambda *args: calls.append(args))
    x, tokens = torch.randn(1, 2, 4, 4), torch.randn(2, 4)
    conv_weight, linear_weight = conv.weight * 0.5, linear.weight.round()
    assert torch.equal(
        layer_forward(conv, [x], conv_weight),
        F.conv2d(x, conv_weight, conv.bias, padding=1),
    )
    assert torch.equal(
        layer_forward(linear, [tokens], linear_weight),
        F.linear(tokens, linear_weight, linear.bias),
    )
    assert torch.equal(
        layer_forward(matmul, [tokens, tokens.T], None), tokens @ tokens.T
    )
    assert calls == []
