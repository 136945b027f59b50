"""The deployed genome re-scored on the data the report names."""

import dataclasses

import pytest
import torch

from evoquant.config import parse_config
from evoquant.export.score import DATA, score_configs
from evoquant.quant.model import WRAPPED

CONFIG = parse_config({"problem": {"name": "digits"}})


@pytest.fixture
def held_out(attention):
    tiny, model, layers, table, _ = attention
    other = [torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(7))]
    return dataclasses.replace(tiny, validation_batches=other), model, layers, table


def test_scores_on_fitness_and_held_out_batches(held_out):
    problem, model, layers, table = held_out
    configs = [(8, 8), (4, 16), (16, 16), (8, 8), (4, 16)]
    scores = score_configs(problem, model, layers, table, configs, CONFIG)
    assert set(scores) == set(DATA) == {"fitness", "heldout"}
    weights = [layer.num_weights for layer in layers]
    expected = sum(w * c[0] for w, c in zip(weights, configs)) / sum(weights)
    for metrics in scores.values():
        assert metrics["avg_weight_bits"] == pytest.approx(expected)
        assert metrics["error"] == metrics["f_cos"]
    assert scores["fitness"]["error"] != scores["heldout"]["error"]
    assert not getattr(model, WRAPPED, False)  # the model is left as it was


def test_fp16_everywhere_scores_far_below_int8(held_out):
    problem, model, layers, table = held_out
    problem = dataclasses.replace(problem, validation_batches=())

    def error(config):
        scores = score_configs(
            problem, model, layers, table, [config] * len(layers), CONFIG
        )
        assert set(scores) == {"fitness"}  # no held-out data, no held-out score
        return scores["fitness"]["error"]

    assert error((16, 16)) < error((8, 8)) / 10
