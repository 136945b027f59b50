"""From a front point's configs (or, in older run dirs, its genes) to per-layer deployment plans."""

import pytest

from evoquant.errors import UserError
from evoquant.export.plan import genome_configs, plan_layers
from evoquant.quant.layers import Layer
from evoquant.space import SearchSpace

LAYERS = [
    Layer("stem", "conv2d", 432),
    Layer("proj", "linear", 64 * 128),
    Layer("attn", "matmul", 0),
]
SHAPES = {"stem": (16, 3, 3, 3), "proj": (64, 128)}
NAMES = [layer.name for layer in LAYERS]


def _no_space() -> SearchSpace:
    raise AssertionError("a point with configs needs no search space")


def test_a_point_with_configs_is_deployed_as_the_search_resolved_it():
    # activations no policy derives from these weights: only the stored configs say so
    point = {
        "bits": {"stem": 8, "proj": 4, "attn": 8},
        "configs": {"attn": [8, 16], "stem": [8, 16], "proj": [4, 16]},
    }
    assert genome_configs(point, NAMES, _no_space) == [(8, 16), (4, 16), (8, 16)]


@pytest.mark.parametrize(
    "configs",
    [
        {"stem": [8, 8], "proj": [8, 8]},
        {"stem": [8, 8], "proj": [8, 8], "attn": [8, 8], "head": [8, 8]},
        {"stem": [8, 8], "proj": [8], "attn": [8, 8]},
        {"stem": "W8A8", "proj": [8, 8], "attn": [8, 8]},
        [[8, 8], [8, 8], [8, 8]],
    ],
)
def test_configs_that_do_not_fit_the_layers_are_refused(configs):
    with pytest.raises(UserError, match="configs do not match the run's layers"):
        genome_configs({"bits": {}, "configs": configs}, NAMES, _no_space)


def test_thesis_genes_are_searched_then_promoted():
    space = SearchSpace(LAYERS)
    point = {"bits": {"stem": 2, "proj": 4, "attn": 4}}  # an older front.json's point
    configs = genome_configs(point, NAMES, lambda: space)
    assert configs == [(2, 8), (4, 8), (4, 8)]
    plans = plan_layers(LAYERS, configs, SHAPES)
    assert [p.deployed for p in plans] == [(8, 8), (4, 16), (8, 8)]
    assert [p.precision for p in plans] == ["int8", "int4w-fp16", "int8"]
    assert [p.promoted for p in plans] == [True, True, False]
    assert [p.block_size for p in plans] == [None, 128, None]
    assert plans[0].reason == "TensorRT has no INT2"


def test_two_gene_points_name_weights_and_activations():
    space = SearchSpace(LAYERS, policy="two_genes")
    bits = {
        "stem (W)": 8,
        "stem (A)": 16,
        "proj (W)": 16,
        "proj (A)": 8,
        "attn (W)": 2,
        "attn (A)": 16,
    }
    configs = genome_configs({"bits": bits}, NAMES, lambda: space)
    assert configs == [(8, 16), (16, 8), (2, 16)]
    plans = plan_layers(LAYERS, configs, SHAPES)
    assert [p.deployed for p in plans] == [(16, 16), (16, 16), (16, 16)]
    assert [p.promoted for p in plans] == [True, True, False]


def test_a_point_from_another_model_is_refused():
    space = SearchSpace(LAYERS)
    with pytest.raises(UserError, match="do not match the run's layers"):
        genome_configs(
            {"bits": {"stem": 8, "head": 8, "attn": 8}}, NAMES, lambda: space
        )
    with pytest.raises(UserError, match="not in its alphabet"):
        genome_configs(
            {"bits": {"stem": 3, "proj": 8, "attn": 8}}, NAMES, lambda: space
        )
