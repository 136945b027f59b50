import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evoquant.config import load_config
from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from fitness.classification import top1_accuracy
from problems.base import role_overlaps
from problems.cnn import digits
from problems.registry import build_problem
from problems.vit import digits_vit
from problems.weights import log_path

CONFIG = Path(digits_vit.__file__).parents[1] / "configs" / "digits_vit.yaml"


@pytest.fixture(scope="module")
def problem():
    return digits_vit.digits_vit_problem()


@pytest.fixture(scope="module")
def model(problem):
    return problem.build_model()


def test_network_shape(model):
    kinds = [layer.kind for layer in find_layers(model)]
    assert kinds.count("conv2d") == 1 and kinds.count("linear") == 3 * 4 + 1
    assert not model.training


def test_attention_is_fused_attention_without_a_layer_of_its_own(model):
    """The model is written as real transformers are: the search must find its
    products, no QuantMatMul is there beforehand."""
    assert "matmul" not in {layer.kind for layer in find_layers(model)}
    source = digits_vit.SelfAttention.forward.__code__.co_names
    assert "scaled_dot_product_attention" in source


def test_the_shipped_weights_and_their_training_log(model):
    shipped = load_file(digits_vit.WEIGHTS)
    for name, tensor in model.state_dict().items():
        assert torch.equal(shipped[name], tensor), name
    record = json.loads(log_path(digits_vit.WEIGHTS).read_text())
    assert record["seed"] == 0 and record["settings"]["arch"] == "digits-vit-v1"
    for key in ("torch", "cpu_capability", "train_seconds", "held_out_top1", "log"):
        assert key in record, key


def test_held_out_top1_of_the_shipped_weights_is_at_least_95_percent(problem, model):
    _, (images, labels) = digits.load_splits()
    with torch.no_grad():
        assert top1_accuracy(model(images), labels) >= 0.95
        outputs = [problem.run(model, batch) for batch in problem.fitness_batches]
    assert problem.task_metric(outputs, problem.fitness_batches)["top1"] >= 0.95


def test_the_digits_batches_in_three_disjoint_roles(problem):
    cnn = digits.digits_problem()
    assert role_overlaps(problem) == {}
    for role in ("calibration", "fitness", "validation"):
        ours, theirs = (getattr(p, f"{role}_batches") for p in (problem, cnn))
        assert len(ours) == len(theirs)
        for (x, y), (x2, y2) in zip(ours, theirs):
            assert torch.equal(x, x2) and torch.equal(y, y2)


def test_a_missing_weights_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(UserError, match="digits_vit weights not found: .*nope"):
        digits_vit.digits_vit_problem(weights=str(path)).build_model()


def test_registered_picklable_and_configured():
    problem = build_problem("digits_vit", {"batch_size": 8})
    assert problem.name == "digits_vit"
    assert problem.fitness_batches[0][0].shape == (8, 1, 8, 8)
    clone = pickle.loads(pickle.dumps(problem))
    assert torch.equal(
        clone.build_model().head.weight, problem.build_model().head.weight
    )
    assert load_config(CONFIG).problem.name == "digits_vit"
