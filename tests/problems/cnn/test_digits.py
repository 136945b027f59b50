import json
import pickle
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from evoquant.api import role_overlaps
from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from fitness.classification import top1_accuracy
from problems.cnn import digits
from problems.registry import build_problem
from problems.weights import log_path


@pytest.fixture(scope="session")
def problem():
    return digits.digits_problem()


@pytest.fixture(scope="session")
def model(problem):
    """The shipped weights."""
    return problem.build_model()


def test_network_shape(model):
    layers = find_layers(model)
    kinds = [layer.kind for layer in layers]
    assert kinds.count("conv2d") == 8 and kinds.count("linear") == 2
    assert sum(layer.num_weights for layer in layers) == 159_264
    assert not model.training


def test_the_shipped_weights_are_loaded_by_default(model):
    shipped = load_file(digits.WEIGHTS)
    assert shipped.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(shipped[name], tensor), name


def test_the_shipped_weights_have_their_training_log():
    record = json.loads(log_path(digits.WEIGHTS).read_text())
    assert record["seed"] == 0 and record["settings"]["epochs"] == 8
    for key in ("torch", "cpu_capability", "train_seconds", "held_out_top1"):
        assert key in record, key


def test_held_out_top1_of_the_shipped_weights_is_at_least_95_percent(problem, model):
    with torch.no_grad():
        outputs = [problem.run(model, batch) for batch in problem.fitness_batches]
        _, (images, labels) = digits.load_splits()
        assert top1_accuracy(model(images), labels) >= 0.95
    assert problem.task_metric(outputs, problem.fitness_batches)["top1"] >= 0.95


def test_batches_come_from_the_right_splits(problem):
    (train_x, _), (held_x, held_y) = digits.load_splits()
    assert len(problem.calibration_batches) == 4 and len(problem.fitness_batches) == 4
    images, labels = problem.calibration_batches[1]
    assert images.shape == (64, 1, 8, 8) and images.dtype == torch.float32
    assert labels.dtype == torch.long
    assert torch.equal(images, train_x[64:128])
    assert torch.equal(problem.fitness_batches[0][0], held_x[:64])
    assert torch.equal(problem.fitness_batches[3][1], held_y[192:256])


def test_the_weights_argument_loads_another_file(tmp_path):
    torch.manual_seed(5)
    other = digits.DigitsNet().eval()
    path = tmp_path / "mine.safetensors"
    save_file(other.state_dict(), path)
    loaded = digits.digits_problem(weights=str(path)).build_model()
    assert not loaded.training
    for name, tensor in other.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_a_missing_weights_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "nope.safetensors"
    problem = digits.digits_problem(weights=str(path))
    with pytest.raises(UserError, match=re.escape(f"digits weights not found: {path}")):
        problem.build_model()


def test_an_unreadable_weights_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"not safetensors")
    with pytest.raises(
        UserError, match=re.escape(f"digits weights {path} are unreadable")
    ):
        digits.load_digits_net(path)


def test_weights_of_another_network_are_a_user_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, path)
    with pytest.raises(
        UserError, match=re.escape(f"digits weights {path} are unreadable")
    ):
        digits.load_digits_net(path)


def test_too_many_batches_is_a_user_error():
    with pytest.raises(UserError, match="held-out split has 397 samples"):
        digits.digits_problem(batch_size=100, fitness_batches=4)


def test_cache_dir_is_no_longer_an_argument():
    with pytest.raises(UserError, match="cache_dir"):
        build_problem("digits", {"cache_dir": "runs/.cache"})


def test_registered_and_picklable():
    problem = build_problem("digits", {"batch_size": 8})
    assert problem.name == "digits"
    assert problem.fitness_batches[0][0].shape == (8, 1, 8, 8)
    clone = pickle.loads(pickle.dumps(problem))
    assert torch.equal(clone.fitness_batches[0][1], problem.fitness_batches[0][1])
    assert torch.equal(clone.build_model().fc.weight, problem.build_model().fc.weight)


def test_the_three_roles_are_disjoint(problem):
    """Calibration from the training split (the weights were trained on it); fitness
    and validation from distinct parts of the held-out split."""
    (train_x, _), (held_x, _) = digits.load_splits()
    assert role_overlaps(problem) == {}
    calibration = torch.cat([images for images, _ in problem.calibration_batches])
    assert torch.equal(calibration, train_x[:256])
    validation = torch.cat([images for images, _ in problem.validation_batches])
    assert torch.equal(validation, held_x[256:])  # all 141 the fitness batches leave
    assert [len(y) for _, y in problem.validation_batches] == [64, 64, 13]


def test_validation_batches_can_be_counted_or_switched_off():
    counted = digits.digits_problem(validation_batches=2)
    assert [len(y) for _, y in counted.validation_batches] == [64, 64]
    assert digits.digits_problem(validation_batches=0).validation_batches == []
    with pytest.raises(UserError, match="do not fit after the 256 fitness samples"):
        digits.digits_problem(validation_batches=3)
    everything = digits.digits_problem(
        batch_size=397, calibration_batches=1, fitness_batches=1
    )
    assert everything.validation_batches == []
