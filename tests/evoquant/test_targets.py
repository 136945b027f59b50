"""TensorRT's deployment rules: what each layer kind runs, promotion to it, and why."""

import pytest

from evoquant import targets
from evoquant.registry import TARGETS


@pytest.mark.parametrize(
    ("kind", "shape", "searched", "deployed"),
    [
        ("conv2d", (16, 3, 3, 3), (2, 8), (8, 8)),
        ("conv2d", (16, 3, 3, 3), (4, 8), (8, 8)),
        ("conv2d", (16, 3, 3, 3), (8, 16), (16, 16)),
        ("linear", (64, 128), (2, 8), (4, 16)),
        ("linear", (64, 128), (4, 8), (4, 16)),
        ("linear", (64, 192), (4, 16), (4, 16)),
        ("linear", (10, 32), (4, 8), (8, 8)),
        ("linear", (10, 32), (16, 8), (16, 16)),
        ("matmul", (), (2, 8), (8, 8)),
        ("matmul", (), (4, 16), (16, 16)),
    ],
)
def test_deploy_promotes_to_the_cheapest_config_at_least_as_precise(
    kind, shape, searched, deployed
):
    assert targets.deploy(searched, kind, shape) == deployed
    assert targets.deploy(deployed, kind, shape) == deployed


def test_int4_blocks_prefer_128_then_64_along_input_features():
    assert targets.int4_block_size("linear", (8, 256)) == 128
    assert targets.int4_block_size("linear", (8, 192)) == 64
    assert targets.int4_block_size("linear", (8, 96)) is None
    assert targets.int4_block_size("conv2d", (64, 64, 1, 1)) is None
    assert targets.int4_block_size("linear", ()) is None


def test_promotion_reasons_name_the_limitation():
    def reason(searched, kind, shape):
        return targets.promotion_reason(
            searched, targets.deploy(searched, kind, shape), kind, shape
        )

    assert reason((2, 8), "conv2d", (4, 4, 1, 1)) == "TensorRT has no INT2"
    assert "not conv2d" in reason((4, 8), "conv2d", (4, 4, 1, 1))
    assert "(has 32)" in reason((4, 8), "linear", (10, 32))
    assert reason((4, 8), "linear", (10, 64)) == (
        "INT4 is weight-only: activations run in FP16"
    )
    assert "no INT2; INT4 is weight-only" in reason((2, 8), "linear", (10, 64))
    assert "not W8A16" in reason((8, 16), "conv2d", (4, 4, 1, 1))
    assert reason((8, 8), "conv2d", (4, 4, 1, 1)) == ""
    assert reason((2, 8), "matmul", ()) == ""  # weightless: activations unchanged


def test_the_block_falls_back_to_64_where_128_does_not_divide_the_rows():
    assert targets.layer_block_size(192, 128) == 64
    assert targets.layer_block_size(256, 128) == 128
    assert targets.layer_block_size(96, 128) == 128  # neither divides: one short block
    assert targets.layer_block_size(96, 32) == 32  # a smaller block is kept as asked


@pytest.mark.parametrize(
    ("shape", "configs"),
    [
        ((8, 256), ((4, 16), (8, 8), (16, 16))),
        ((8, 96), ((8, 8), (16, 16))),
    ],
)
def test_int4_is_offered_only_where_its_blocks_fit(shape, configs):
    assert targets.deployable_configs("linear", shape) == configs
    assert targets.deployable_configs("conv2d", (8, 256, 1, 1)) == ((8, 8), (16, 16))
    assert set(configs) <= set(targets.PRECISIONS)


def test_a_weight_gene_fixes_the_activations():
    assert [targets.activation_bits(b) for b in (2, 4, 8, 16)] == [16, 16, 8, 16]


def test_weightless_layers_are_promoted_only_when_their_activations_change():
    assert not targets.is_promotion((2, 8), (0, 8), "matmul")
    assert targets.is_promotion((2, 4), (0, 8), "matmul")
    assert targets.is_promotion((2, 8), (8, 8), "conv2d")


def test_the_tensorrt_target_is_registered_with_these_rules():
    target = TARGETS.get("tensorrt")
    assert target is targets.TensorRT and target.name == "tensorrt"
    assert target.deployable_configs("linear", (8, 192)) == (
        targets.deployable_configs("linear", (8, 192))
    )
    assert target.activation_bits(4) == 16
