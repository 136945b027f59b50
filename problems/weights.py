"""Writing a trained model the way the built-in problems ship it: safetensors plus a JSON log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save
from torch import nn

from evoquant.atomic import write_bytes_atomic, write_text_atomic


def log_path(weights: Path) -> Path:
    """The JSON training log beside a weights file."""
    return weights.with_suffix(".json")


def write_trained(weights: Path, model: nn.Module, record: dict[str, Any]) -> None:
    """The weights and their training record, each written whole or not at all."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(weights, save(state))
    write_text_atomic(log_path(weights), json.dumps(record, indent=1) + "\n")
    print(f"wrote {weights} and {log_path(weights)}")
