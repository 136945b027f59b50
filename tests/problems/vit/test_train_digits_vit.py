"""The training command on a few optimizer steps (no claim about accuracy)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from problems.vit import train_digits_vit
from problems.vit.digits_vit import WEIGHTS, DigitsViT, load_digits_vit
from problems.weights import log_path

REPO = Path(__file__).resolve().parents[3]


def test_the_command_writes_weights_the_problem_loads(tmp_path):
    out = tmp_path / "vit.safetensors"
    train_digits_vit.main(
        ["--seed", "2", "--epochs", "1", "--steps", "2", "--out", str(out)]
    )
    record = json.loads(log_path(out).read_text())
    assert record["seed"] == 2 and record["steps"] == 2
    assert record["settings"] == train_digits_vit.TRAIN_SETTINGS | {"epochs": 1}
    model = load_digits_vit(out)
    assert isinstance(model, DigitsViT) and not model.training
    assert not model.state_dict()["head.weight"].equal(
        load_digits_vit().state_dict()["head.weight"]
    )


def test_the_module_runs_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "problems.vit.train_digits_vit", "--help"],
        cwd=REPO,
        env=os.environ | {"COLUMNS": "1000"},
        check=True,
        capture_output=True,
        text=True,
    )
    assert "--seed" in done.stdout and str(WEIGHTS) in done.stdout
