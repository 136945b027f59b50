"""The training command's mechanics, on a few optimizer steps (no claim about accuracy)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from problems.cnn import train_digits
from problems.cnn.digits import WEIGHTS, digits_problem, load_digits_net
from problems.weights import log_path

REPO = Path(__file__).resolve().parents[3]


def test_the_command_writes_weights_and_log(tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    threads = torch.get_num_threads()
    train_digits.main(
        ["--seed", "3", "--epochs", "2", "--steps", "3", "--out", str(out)]
    )
    assert torch.get_num_threads() == threads
    record = json.loads(log_path(out).read_text())
    assert record["seed"] == 3 and record["steps"] == 3
    assert record["settings"] == train_digits.TRAIN_SETTINGS | {"epochs": 2}
    assert record["torch"] == torch.__version__
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["train_seconds"] >= 0
    assert 0 <= record["train_top1"] <= 1 and 0 <= record["held_out_top1"] <= 1
    assert [entry["steps"] for entry in record["log"]] == [3]
    assert f"wrote {out}" in capsys.readouterr().out
    model = load_digits_net(out)
    for name, tensor in load_file(out).items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert {p.name for p in tmp_path.iterdir()} == {"w.safetensors", "w.json"}
    assert digits_problem(weights=str(out)).build_model().fc.weight.shape == (10, 128)


def test_steps_span_epochs():
    log: list[dict] = []
    per_epoch = train_digits.steps_per_epoch(train_digits.TRAIN_SETTINGS)
    train_digits.train_digits_net(0, steps=per_epoch + 2, log=log)
    assert [entry["steps"] for entry in log] == [per_epoch, per_epoch + 2]
    assert [entry["epoch"] for entry in log] == [1, 2]


def test_training_is_deterministic_and_leaves_global_state():
    torch.manual_seed(123)
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    first = train_digits.train_digits_net(seed=0, steps=3)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert not first.training
    again = train_digits.train_digits_net(seed=0, steps=3)
    for name, tensor in first.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name
    other = train_digits.train_digits_net(seed=1, steps=3)
    assert not torch.equal(other.fc.weight, first.fc.weight)


@pytest.mark.parametrize("option", ["--epochs", "--steps"])
def test_non_positive_lengths_are_refused(option, tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    with pytest.raises(SystemExit) as exit_info:
        train_digits.main([option, "0", "--out", str(out)])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_module_runs_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "problems.cnn.train_digits", "--help"],
        cwd=REPO,
        env=os.environ | {"COLUMNS": "1000"},  # no wrap inside a path with a '-'
        check=True,
        capture_output=True,
        text=True,
    )
    assert "--seed" in done.stdout and "--out" in done.stdout
    assert str(WEIGHTS) in done.stdout
