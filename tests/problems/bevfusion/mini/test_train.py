import json
import sys

import torch
from safetensors.torch import load_file

from problems.bevfusion.mini import train
from problems.bevfusion.mini.checkpoint import load_model
from problems.weights import log_path


def test_training_script_writes_weights_and_log(tmp_path, monkeypatch):
    out = tmp_path / "w.safetensors"
    argv = [
        "train",
        "--steps",
        "2",
        "--train-scenes",
        "4",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    threads = torch.get_num_threads()
    try:
        train.main()
    finally:
        torch.set_num_threads(threads)
    record = json.loads(log_path(out).read_text())
    assert record["seed"] == 3 and record["settings"]["steps"] == 2
    assert record["log"][0]["event"] == "scenes generated"
    model = load_model(out)
    for name, tensor in load_file(out).items():
        assert torch.equal(model.state_dict()[name], tensor)
    assert {p.name for p in tmp_path.iterdir()} == {"w.safetensors", "w.json"}
