import numpy as np
import pytest
import torch
from pymoo.core.problem import Problem
from torch import nn

from evoquant import targets
from evoquant.config import RunConfig
from evoquant.errors import UserError
from evoquant.operators import (
    AdjacentBitMutation,
    HalfSplitCrossover,
    RandomResetMutation,
    UniformPlusRandomSampling,
)
from evoquant.quant.layers import Layer, find_layers
from evoquant.quant.matmul import QuantMatMul
from evoquant.space import SearchSpace, measure_macs

LAYERS = [
    Layer("stem.0", "conv2d", 216),
    Layer("stem.2", "conv2d", 576),
    Layer("attn.q", "linear", 64),
    Layer("attn.q_k_matmul", "matmul", 0),
    Layer("head", "linear", 32),
]


def test_thesis_policy_one_gene_per_layer_with_derived_activations():
    space = SearchSpace(LAYERS)
    bits = [2, 4, 8, 16, 8]
    assert space.n_genes == 5
    assert space.to_bits(space.from_bits(bits)) == bits
    assert space.bit_configs(bits) == [(2, 8), (4, 8), (8, 8), (16, 16), (8, 8)]
    assert space.xl.tolist() == [0] * 5 and space.xu.tolist() == [3] * 5


def test_two_genes_policy_weights_then_activations():
    space = SearchSpace(LAYERS, policy="two_genes")
    assert space.n_genes == 10
    assert space.gene_alphabets[:2] == [(2, 4, 8, 16), (8, 16)]
    bits = [2, 16, 4, 8, 8, 8, 16, 16, 16, 8]
    assert space.to_bits(space.from_bits(bits)) == bits
    assert space.bit_configs(bits) == [(2, 16), (4, 8), (8, 8), (16, 16), (16, 8)]


def test_from_bits_rejects_wrong_length_and_foreign_values():
    space = SearchSpace(LAYERS, policy="two_genes")
    with pytest.raises(UserError, match="10"):
        space.from_bits([8] * 5)
    with pytest.raises(UserError, match=r"activations of layer stem\.2\): 4 bits"):
        space.from_bits([8, 8, 8, 4] + [8] * 6)
    with pytest.raises(UserError, match=r"layer attn\.q\): 3 bits"):
        SearchSpace(LAYERS).from_bits([8, 8, 3, 8, 8])


def test_fixed_layers_have_a_single_level():
    space = SearchSpace(LAYERS, fixed={"stem.*": 8, "head": 16}, policy="two_genes")
    assert space.fixed == {"stem.0": 8, "stem.2": 8, "head": 16}
    assert space.gene_alphabets[0:4] == [(8,), (8,), (8,), (8,)]
    assert space.gene_alphabets[8:] == [(16,), (16,)]
    assert space.xu[:4].tolist() == [0, 0, 0, 0]
    assert space.to_bits(space.uniform(2)) == [8, 8, 8, 8, 2, 8, 2, 8, 16, 16]
    with pytest.raises(UserError, match="stem.0"):
        space.from_bits([4] + space.to_bits(space.uniform(4))[1:])


@pytest.mark.parametrize(
    ("fixed", "message"),
    [
        ({"backbone.*": 8}, "matches no searched layer"),
        ({"head": 3}, "not in the alphabet"),
        ({"stem.*": 8, "stem.0": 4}, "both 8 and 4"),
    ],
)
def test_bad_fixed_patterns_are_user_errors(fixed, message):
    with pytest.raises(UserError, match=message):
        SearchSpace(LAYERS, fixed=fixed)


def test_alphabet_is_checked_and_sorted():
    assert SearchSpace(LAYERS, alphabet=[8, 4]).alphabet == (4, 8)
    with pytest.raises(UserError, match="3 bits"):
        SearchSpace(LAYERS, alphabet=[3, 8])
    with pytest.raises(UserError, match="empty"):
        SearchSpace(LAYERS, alphabet=[])
    with pytest.raises(UserError, match="no quantizable layer"):
        SearchSpace([])
    with pytest.raises(UserError, match="policy"):
        SearchSpace(LAYERS, policy="per_channel")


def test_from_config_reads_alphabet_fixed_and_policy():
    run = RunConfig.model_validate(
        {
            "problem": {"name": "x"},
            "layers": {"fixed": {"head": 8}},
            "search": {"alphabet": [4, 8], "policy": "two_genes"},
        }
    )
    space = SearchSpace.from_config(LAYERS, run, macs={"head": 99})
    assert space.alphabet == (4, 8) and space.policy == "two_genes"
    assert space.fixed == {"head": 8}
    assert space.macs == (0, 0, 0, 0, 99)


def test_uniform_genomes_cover_every_uniform_configuration():
    thesis = SearchSpace(LAYERS)
    assert [thesis.to_bits(g)[0] for g in thesis.uniform_genomes()] == [2, 4, 8, 16]
    two = SearchSpace(LAYERS, policy="two_genes")
    pairs = [tuple(two.to_bits(g)[:2]) for g in two.uniform_genomes()]
    assert sorted(pairs) == [(w, a) for w in (2, 4, 8, 16) for a in (8, 16)]
    with pytest.raises(UserError, match="not reachable"):
        thesis.uniform(4, 16)


def test_module_boundaries_are_gene_indices():
    assert SearchSpace(LAYERS).module_boundaries() == [2, 4]
    assert SearchSpace(LAYERS, policy="two_genes").module_boundaries() == [4, 8]


def test_measure_macs_counts_conv_linear_and_matmul(tiny_model):
    layers = find_layers(tiny_model)
    batch = torch.randn(2, 3, 4, 4)
    macs = measure_macs(tiny_model, lambda model, x: model(x), batch, layers)
    tokens = 2 * 16
    assert macs == {
        "stem.0": tokens * 8 * 3 * 9,
        "stem.2": tokens * 8 * 8 * 9,
        "attn.q": tokens * 8 * 8,
        "attn.q_k_matmul": 2 * 16 * 16 * 8,
        "head": 2 * 4 * 8,
    }
    assert not tiny_model.stem[0]._forward_hooks


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
        )
        self.attn = nn.ModuleDict({"q": nn.Linear(8, 8), "q_k_matmul": QuantMatMul()})
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        tokens = self.stem(x).flatten(2).transpose(1, 2)
        q = self.attn["q"](tokens)
        weights = self.attn["q_k_matmul"](q, q.transpose(1, 2)).softmax(-1)
        return self.head((weights @ tokens).mean(1))


@pytest.fixture
def tiny_model():
    return TinyNet().eval()


# ---- target: tensorrt: a space that only ever holds deployable genes ---------------

TRT_LAYERS = [
    Layer("stem", "conv2d", 432),
    Layer("proj", "linear", 128 * 64),
    Layer("small", "linear", 32 * 10),
    Layer("attn", "matmul", 0),
]
TRT_SHAPES = {"stem": (16, 3, 3, 3), "proj": (64, 128), "small": (10, 32)}


def test_target_space_keeps_only_what_each_layer_can_run():
    space = SearchSpace(TRT_LAYERS, target="tensorrt", weight_shapes=TRT_SHAPES)
    assert space.gene_alphabets == [(8, 16), (4, 8, 16), (8, 16), (8, 16)]
    assert space.bit_configs([16, 4, 8, 8]) == [(16, 16), (4, 16), (8, 8), (8, 8)]
    assert space.reachable_configs() == {(4, 16), (8, 8), (16, 16)}
    assert [space.to_bits(g) for g in space.uniform_genomes()] == [
        [8, 8, 8, 8],
        [16, 16, 16, 16],
    ]
    without_shapes = SearchSpace(TRT_LAYERS, target="tensorrt")
    assert without_shapes.gene_alphabets[1] == (8, 16)  # INT4 needs the weight shape


def test_target_space_refuses_what_it_cannot_deploy():
    with pytest.raises(UserError, match="pins stem to 4 bits"):
        SearchSpace(
            TRT_LAYERS, fixed={"stem": 4}, target="tensorrt", weight_shapes=TRT_SHAPES
        )
    with pytest.raises(UserError, match="no width of search.alphabet"):
        SearchSpace(
            TRT_LAYERS, alphabet=[2, 4], target="tensorrt", weight_shapes=TRT_SHAPES
        )
    with pytest.raises(UserError, match="search.policy thesis"):
        SearchSpace(TRT_LAYERS, policy="two_genes", target="tensorrt")
    with pytest.raises(UserError, match="unknown target"):
        SearchSpace(TRT_LAYERS, target="tpu")


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
                assert config in targets.deployable_configs(layer.kind, shape)
                assert targets.deploy(config, layer.kind, shape) == config
                checked += 1
    assert checked > 10_000
