"""Attention products found in a model's own code: named, routed, FP32 unchanged."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evoquant.quant.attention import attention, discover_attention
from evoquant.quant.layers import find_layers
from evoquant.quant.matmul import QuantMatMul

TOLERANCE = 1e-6
ATTENTION = ("q_k_matmul", "attn_v_matmul")


def forward(model, batch):
    return model(*batch) if isinstance(batch, tuple) else model(batch)


def discovered(model, batch):
    """(names added, FP32 output before, FP32 output after) under no_grad."""
    with torch.no_grad():
        before = forward(model, batch)
    names = discover_attention(model, forward, batch)
    with torch.no_grad():
        after = forward(model, batch)
    return names, before, after


def max_difference(a, b):
    return (a - b).abs().max().item()


class Counting(QuantMatMul):
    """A QuantMatMul that counts its calls, to see that routing reaches it."""

    calls = 0

    def forward(self, a, b):
        type(self).calls += 1
        return super().forward(a, b)


class Products(nn.Module):
    """Every spelling of a product between activations, and products that are not attention."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.w = nn.Parameter(torch.randn(6, 6))
        self.explicit = QuantMatMul()

    def forward(self, x, cam):
        h = self.proj(x)
        a = h @ h.transpose(-1, -2)  # matmul_0
        b = torch.matmul(a.softmax(-1), h)  # matmul_1
        c = torch.bmm(b, h.transpose(1, 2))  # matmul_2
        d = torch.baddbmm(c, h, b.transpose(1, 2), alpha=0.5)  # matmul_3
        e = h.__rmatmul__(d)  # matmul_4: d @ h
        for _ in range(2):  # matmul_5 and matmul_6, one layer each for the loop
            e = (e @ e.transpose(1, 2)).softmax(-1).matmul(e)
        weight = h @ self.w + h @ self.w.t()  # a weight: not attention
        camera = cam @ cam  # no weight behind either factor: not attention
        return self.explicit(e, weight.transpose(1, 2)) + camera.sum()


def products_batch():
    torch.manual_seed(1)
    return torch.randn(2, 5, 6), torch.randn(3, 3)


def test_products_between_activations_become_layers_named_by_call_site():
    torch.manual_seed(0)
    model = Products().eval()
    names, before, after = discovered(model, products_batch())
    assert names == [f"matmul_{i}" for i in range(7)]
    assert max_difference(before, after) <= TOLERANCE
    layers = find_layers(model)
    assert [layer.name for layer in layers] == ["proj", "explicit", *names]
    assert {layer.kind for layer in layers if layer.name != "proj"} == {"matmul"}


def test_routed_calls_reach_the_layers_and_a_second_discovery_adds_nothing():
    torch.manual_seed(0)
    model = Products().eval()
    discover_attention(model, forward, products_batch())
    for i in range(7):
        model.get_submodule(f"matmul_{i}").__class__ = Counting
    Counting.calls = 0
    with torch.no_grad():
        forward(model, products_batch())
    assert Counting.calls == 9  # seven sites, two of them called twice
    assert discover_attention(model, forward, products_batch()) == [
        f"matmul_{i}" for i in range(7)
    ]
    assert len(find_layers(model)) == 9


def test_fused_attention_is_its_math_path_decomposition():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8)
    bool_mask = torch.rand(5, 7) > 0.3
    bool_mask[2] = False  # a row no key may see: zeros, as the fused kernels give
    cases = [
        {},
        {"attn_mask": bool_mask},
        {"attn_mask": torch.randn(2, 1, 5, 7)},
        {"scale": 0.3},
        {"is_causal": True},
    ]
    products = QuantMatMul(), QuantMatMul()
    for kwargs in cases:
        fused = F.scaled_dot_product_attention(q, k, v, **kwargs)
        assert max_difference(attention(*products, q, k, v, **kwargs), fused) <= 1e-6
    assert attention(*products, q, k, v, attn_mask=bool_mask)[:, :, 2].eq(0).all()
    grouped_k, grouped_v = k[:, :2], v[:, :2]
    fused = F.scaled_dot_product_attention(q, grouped_k, grouped_v, enable_gqa=True)
    ours = attention(*products, q, grouped_k, grouped_v, enable_gqa=True)
    assert max_difference(ours, fused) <= 1e-6


def test_dropout_only_where_the_call_asks_for_it():
    torch.manual_seed(0)
    q = torch.randn(1, 1, 6, 4)
    products = QuantMatMul(), QuantMatMul()
    plain = attention(*products, q, q, q)
    assert torch.equal(attention(*products, q, q, q, dropout_p=0.0), plain)
    assert not torch.equal(attention(*products, q, q, q, dropout_p=0.5), plain)


class SdpaBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        q, k, v = self.qkv(x).view(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
        first = F.scaled_dot_product_attention(q, k, v)
        second = F.scaled_dot_product_attention(first, k, v, is_causal=True)
        return second.sum(1)


def test_each_fused_call_gives_a_q_k_and_an_attn_v_layer():
    torch.manual_seed(0)
    model = nn.Sequential(SdpaBlock()).eval()
    names, before, after = discovered(model, torch.randn(2, 5, 8))
    assert names == [
        "0.q_k_matmul",
        "0.attn_v_matmul",
        "0.q_k_matmul_1",
        "0.attn_v_matmul_1",
    ]
    assert max_difference(before, after) <= TOLERANCE


def test_explicit_quantmatmul_layers_keep_their_names(tiny_model, tiny_batches):
    """The bevfusion_mini Swin's way: products already in QuantMatMul modules."""
    explicit = [layer.name for layer in find_layers(tiny_model)]
    assert "attn.q_k_matmul" in explicit
    names, before, after = discovered(tiny_model, tiny_batches[0])
    assert names == ["matmul_0"]  # its plain `weights @ tokens`, nothing else
    assert [layer.name for layer in find_layers(tiny_model)] == [*explicit, "matmul_0"]
    assert max_difference(before, after) <= TOLERANCE


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_shows_its_products(need_weights):
    torch.manual_seed(0)
    model = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(2, 5, 8)
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[0, 3:] = True

    def run(model, batch):
        return model(*batch, key_padding_mask=padding, need_weights=need_weights)[0]

    with torch.no_grad():
        before = run(model, (x, x, x))  # the fused fast path
    names = discover_attention(model, run, (x, x, x))
    with torch.no_grad():
        after = run(model, (x, x, x))
    expected = ["matmul_0", "matmul_1"] if need_weights else list(ATTENTION)
    assert names == expected
    assert max_difference(before, after) <= TOLERANCE
    assert [layer.name for layer in find_layers(model)] == expected


def bert(implementation: str):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        attn_implementation=implementation,
    )
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def bert_batch():
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 4:] = 0  # padding: the mask path of attention
    return {"input_ids": torch.randint(0, 50, (3, 7), generator=generator)} | {
        "attention_mask": mask
    }


def run_bert(model, batch):
    return model(**batch).last_hidden_state


@pytest.mark.parametrize(
    ("implementation", "products"),
    [("sdpa", ATTENTION), ("eager", ("matmul_0", "matmul_1"))],
)
def test_a_config_built_bert_shows_the_attention_of_every_layer(
    implementation, products
):
    model = bert(implementation)
    batch = bert_batch()
    with torch.no_grad():
        before = run_bert(model, batch)
    names = discover_attention(model, run_bert, batch)
    with torch.no_grad():
        after = run_bert(model, batch)
    assert names == [
        f"encoder.layer.{i}.attention.self.{product}"
        for i in range(2)
        for product in products
    ]
    assert max_difference(before, after) <= TOLERANCE


def test_a_timm_vit_shows_the_attention_of_every_block():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        depth=2,
        num_classes=5,
    ).eval()
    names, before, after = discovered(model, torch.randn(2, 3, 32, 32))
    assert names == [f"blocks.{i}.attn.{p}" for i in range(2) for p in ATTENTION]
    assert max_difference(before, after) <= TOLERANCE
