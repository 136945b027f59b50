import pickle

import pytest
import torch

from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from fitness.classification import top1_accuracy
from problems.cnn import digits
from problems.registry import build_problem


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("digits_cache")


@pytest.fixture(scope="session")
def problem(cache_dir):
    return digits.digits_problem(cache_dir=str(cache_dir))


@pytest.fixture(scope="session")
def model(problem):
    """Trains once per session (a few seconds) and caches the weights."""
    return problem.build_model()


def test_network_shape(model):
    layers = find_layers(model)
    kinds = [layer.kind for layer in layers]
    assert kinds.count("conv2d") == 8 and kinds.count("linear") == 2
    assert sum(layer.num_weights for layer in layers) == 159_264
    assert not model.training


def test_held_out_top1_at_least_95_percent(problem, model):
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


def test_weights_are_cached_and_reloaded(cache_dir, model, monkeypatch):
    path = digits.cache_path(cache_dir, seed=0)
    assert path.is_file() and path.name.startswith("digits_cnn-")
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temp file left
    monkeypatch.setattr(digits, "train_digits_net", pytest.fail)
    reloaded = digits.build_digits_net(cache_dir, seed=0)
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name


def test_training_is_deterministic_and_leaves_global_state():
    torch.manual_seed(123)
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    first = digits.train_digits_net(seed=0, epochs=1)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    again = digits.train_digits_net(seed=0, epochs=1)
    for name, tensor in first.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_cache_name_depends_on_seed(cache_dir):
    assert digits.cache_path(cache_dir, 0) != digits.cache_path(cache_dir, 1)


def test_corrupt_cache_is_a_user_error(tmp_path):
    digits.cache_path(tmp_path, 0).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="unreadable; delete the file"):
        digits.build_digits_net(tmp_path, 0)


def test_too_many_batches_is_a_user_error():
    with pytest.raises(UserError, match="held-out split has 397 samples"):
        digits.digits_problem(batch_size=100, fitness_batches=4)


def test_registered_and_picklable(cache_dir):
    problem = build_problem("digits", {"batch_size": 8, "cache_dir": str(cache_dir)})
    assert problem.name == "digits" and problem.fitness_batches[0][0].shape == (
        8,
        1,
        8,
        8,
    )
    clone = pickle.loads(pickle.dumps(problem))
    assert torch.equal(clone.fitness_batches[0][1], problem.fitness_batches[0][1])
