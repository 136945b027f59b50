import logging

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from evoquant.api import role_overlaps, sample_fingerprints
from evoquant.errors import UserError
from evoquant.quant.layers import find_layers
from problems.cnn.torchvision_models import build_torchvision_model, torchvision_problem
from problems.registry import build_problem

SMALL = {
    "image_size": 32,
    "batch_size": 2,
    "calibration_batches": 1,
    "fitness_batches": 1,
}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sb = b.state_dict()
    return all(torch.equal(t, sb[k]) for k, t in a.state_dict().items())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "resnet50"])
def test_random_data_mode(name, caplog):
    with caplog.at_level(logging.WARNING):
        problem = torchvision_problem(name, **SMALL)
    assert "random images" in caplog.text
    model = problem.build_model()
    assert not model.training
    kinds = {layer.kind for layer in find_layers(model)}
    assert kinds == {"conv2d", "linear"}
    images, labels = problem.fitness_batches[0]
    assert images.shape == (2, 3, 32, 32) and labels.dtype == torch.long
    with torch.no_grad():
        outputs = [problem.run(model, batch) for batch in problem.fitness_batches]
    assert outputs[0].shape == (2, 1000)
    # Labels are the FP32 model's own answers, so FP32 scores 100 %.
    assert problem.task_metric(outputs, problem.fitness_batches) == {"top1": 1.0}


def test_every_process_builds_the_same_random_model():
    problem = torchvision_problem("resnet18", num_classes=10, **SMALL)
    assert same_weights(problem.build_model(), problem.build_model())


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_round_trip(tmp_path, suffix):
    trained = build_torchvision_model("resnet18", None, 10, seed=7)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pt":
        torch.save(trained.state_dict(), path)
    else:
        save_file(trained.state_dict(), str(path))
    problem = build_problem(
        "torchvision",
        {"model": "resnet18", "weights": str(path), "num_classes": 10, **SMALL},
    )
    assert problem.name == "torchvision-resnet18"
    loaded = problem.build_model()
    assert same_weights(loaded, trained)
    assert not same_weights(
        loaded, build_torchvision_model("resnet18", None, 10, seed=0)
    )


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(UserError, match=f"weights file not found: {path}"):
        torchvision_problem("resnet18", weights=str(path), **SMALL)


def test_mismatched_weights_are_one_line(tmp_path):
    state = build_torchvision_model("resnet18", None, 10, seed=0).state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra"] = torch.zeros(1)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(UserError) as info:
        build_torchvision_model("resnet18", str(path), 1000, seed=0)
    message = str(info.value)
    assert "\n" not in message
    assert "1 missing keys (e.g. layer1.0.conv1.weight)" in message
    assert "1 unexpected keys (e.g. extra)" in message
    assert "2 shape mismatches (e.g. fc.weight)" in message
    assert "does not match resnet18" in message


def test_unreadable_weights_file(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read weights file"):
        build_torchvision_model("resnet18", str(path), 1000, seed=0)
    torch.save(torch.zeros(3), path)
    with pytest.raises(UserError, match="does not hold a state_dict"):
        build_torchvision_model("resnet18", str(path), 1000, seed=0)


def test_unknown_model():
    with pytest.raises(
        UserError, match="'resnet17' is not a torchvision classification model"
    ):
        torchvision_problem("resnet17")


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for label in ["cat", "dog"]:
        (tmp_path / label).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    return tmp_path


def test_image_folder(image_folder):
    problem = torchvision_problem(
        "resnet18",
        data_path=str(image_folder),
        image_size=32,
        batch_size=2,
        calibration_batches=1,
        fitness_batches=1,
        validation_batches=1,
        num_classes=2,
    )
    batches = [
        *problem.calibration_batches,
        *problem.fitness_batches,
        *problem.validation_batches,
    ]
    assert len(problem.fitness_batches) == len(problem.validation_batches) == 1
    assert all(images.shape == (2, 3, 32, 32) for images, _ in batches)
    labels = torch.cat([labels for _, labels in batches])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]  # every image used once
    assert torch.cat([images for images, _ in batches]).min() < 0  # normalised
    with torch.no_grad():
        outputs = problem.run(problem.build_model(), problem.fitness_batches[0])
    assert outputs.shape == (2, 2)


def test_image_folder_too_small(image_folder):
    with pytest.raises(UserError, match="has 6 images, the batches need 48"):
        torchvision_problem(
            "resnet18",
            data_path=str(image_folder),
            batch_size=8,
            calibration_batches=1,
            fitness_batches=1,
        )


def test_missing_data_folder(tmp_path):
    with pytest.raises(UserError, match="data folder not found"):
        torchvision_problem("resnet18", data_path=str(tmp_path / "nope"))


def test_the_three_roles_share_no_image(image_folder):
    problem = torchvision_problem(
        "resnet18",
        data_path=str(image_folder),
        image_size=32,
        batch_size=2,
        calibration_batches=1,
        fitness_batches=1,
        validation_batches=1,
        num_classes=2,
    )
    assert role_overlaps(problem) == {}
    assert len(sample_fingerprints(problem.validation_batches)) == 2


def test_random_images_have_three_disjoint_roles():
    problem = torchvision_problem("resnet18", num_classes=10, **SMALL)
    assert len(problem.validation_batches) == 4
    assert role_overlaps(problem) == {}
    with pytest.raises(UserError, match="validation_batches must be 0 or more"):
        torchvision_problem("resnet18", validation_batches=-1, **SMALL)
