"""TensorRT support rules, and ``target: tensorrt`` search spaces that only ever hold deployable genes."""

import numpy as np
import pytest
from pymoo.core.problem import Problem

from evoquant import targets as support
from evoquant.config import parse_config
from evoquant.errors import UserError
from evoquant.operators import (
    AdjacentBitMutation,
    HalfSplitCrossover,
    RandomResetMutation,
    UniformPlusRandomSampling,
)
from evoquant.quant.layers import Layer
from evoquant.space import SearchSpace

LAYERS = [
    Layer("stem", "conv2d", 432),
    Layer("proj", "linear", 128 * 64),
    Layer("small", "linear", 32 * 10),
    Layer("attn", "matmul", 0),
]
SHAPES = {"stem": (16, 3, 3, 3), "proj": (64, 128), "small": (10, 32)}


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
    assert support.deploy(searched, kind, shape) == deployed
    assert support.deploy(deployed, kind, shape) == deployed


def test_int4_blocks_prefer_128_then_64_along_input_features():
    assert support.int4_block_size("linear", (8, 256)) == 128
    assert support.int4_block_size("linear", (8, 192)) == 64
    assert support.int4_block_size("linear", (8, 96)) is None
    assert support.int4_block_size("conv2d", (64, 64, 1, 1)) is None
    assert support.int4_block_size("linear", ()) is None


def test_promotion_reasons_name_the_limitation():
    def reason(searched, kind, shape):
        return support.promotion_reason(
            searched, support.deploy(searched, kind, shape), kind, shape
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


def test_target_space_keeps_only_what_each_layer_can_run():
    space = SearchSpace(LAYERS, target="tensorrt", weight_shapes=SHAPES)
    assert space.gene_alphabets == [(8, 16), (4, 8, 16), (8, 16), (8, 16)]
    assert space.bit_configs([16, 4, 8, 8]) == [(16, 16), (4, 16), (8, 8), (8, 8)]
    assert space.reachable_configs() == {(4, 16), (8, 8), (16, 16)}
    assert [space.to_bits(g) for g in space.uniform_genomes()] == [
        [8, 8, 8, 8],
        [16, 16, 16, 16],
    ]
    without_shapes = SearchSpace(LAYERS, target="tensorrt")
    assert without_shapes.gene_alphabets[1] == (8, 16)  # INT4 needs the weight shape


def test_target_space_refuses_what_it_cannot_deploy():
    with pytest.raises(UserError, match="pins stem to 4 bits"):
        SearchSpace(LAYERS, fixed={"stem": 4}, target="tensorrt", weight_shapes=SHAPES)
    with pytest.raises(UserError, match="no width of search.alphabet"):
        SearchSpace(LAYERS, alphabet=[2, 4], target="tensorrt", weight_shapes=SHAPES)
    with pytest.raises(UserError, match="search.policy thesis"):
        SearchSpace(LAYERS, policy="two_genes", target="tensorrt")
    with pytest.raises(UserError, match="unknown target"):
        SearchSpace(LAYERS, target="tpu")


def _random_space(rng):
    kinds = rng.choice(["conv2d", "linear", "matmul"], size=rng.integers(2, 12))
    layers, shapes = [], {}
    for i, kind in enumerate(kinds):
        name = f"m{i // 3}.l{i}"
        if kind == "conv2d":
            shapes[name] = (int(rng.integers(1, 64)), int(rng.integers(1, 64)), 3, 3)
        elif kind == "linear":
            shapes[name] = (
                int(rng.integers(1, 64)),
                int(rng.choice([8, 32, 64, 96, 128, 192, 512, 100])),
            )
        weights = int(np.prod(shapes[name])) if name in shapes else 0
        layers.append(Layer(name, str(kind), weights))
    alphabet = {int(b) for b in rng.choice([2, 4, 8, 16], size=rng.integers(1, 5))}
    alphabet.add(int(rng.choice([8, 16])))
    space = SearchSpace(
        layers, alphabet=alphabet, target="tensorrt", weight_shapes=shapes
    )
    return space, layers, shapes


def test_no_sampled_or_bred_genome_of_a_target_space_needs_a_promotion():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        space, layers, shapes = _random_space(rng)
        problem = Problem(n_var=space.n_genes, xl=space.xl, xu=space.xu, vtype=int)
        X = UniformPlusRandomSampling(space.uniform_genomes())._do(
            problem, 30, random_state=rng
        )
        offspring = [X]
        for mutation in (AdjacentBitMutation(prob_var=0.5), RandomResetMutation(0.5)):
            offspring.append(mutation._do(problem, X, random_state=rng))
        if space.n_genes > 1:
            pairs = np.stack([X[rng.permutation(len(X))] for _ in range(2)])
            for split in ("midpoint", "random"):
                children = HalfSplitCrossover(split)._do(
                    problem, pairs, random_state=rng
                )
                offspring += list(children)
        for genome in np.vstack(offspring):
            configs = space.bit_configs(space.to_bits(genome))
            for layer, config in zip(layers, configs):
                shape = shapes.get(layer.name, ())
                assert config in support.deployable_configs(layer.kind, shape)
                assert support.deploy(config, layer.kind, shape) == config
                checked += 1
    assert checked > 10_000


def test_config_target_defaults_to_the_tensorrt_scheme_and_refuses_thesis():
    config = parse_config({"problem": {"name": "digits"}, "target": "tensorrt"})
    assert config.quant.scheme == "tensorrt"
    assert config.quant.bit_configs == [(4, 16), (8, 8), (16, 16)]
    kept = parse_config(
        {
            "problem": {"name": "digits"},
            "target": "tensorrt",
            "quant": {"bit_configs": [[8, 8], [16, 16]]},
        }
    )
    assert kept.quant.bit_configs == [(8, 8), (16, 16)]
    plain = parse_config({"problem": {"name": "digits"}})
    assert plain.target is None and plain.quant.scheme == "thesis"
    with pytest.raises(UserError, match="quant.scheme must be tensorrt, not thesis"):
        parse_config(
            {
                "problem": {"name": "digits"},
                "target": "tensorrt",
                "quant": {"scheme": "thesis"},
            }
        )
