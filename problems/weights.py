"""Trained models the way the built-in problems ship them: safetensors plus a JSON log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from evoquant.atomic import write_bytes_atomic, write_text_atomic
from evoquant.errors import UserError


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


def load_trained(
    model: nn.Module, weights: str | Path, label: str, command: str
) -> nn.Module:
    """``model`` with the weights ``python -m command`` wrote, in eval mode.

    A missing file, or one that is not safetensors of this network, is a UserError
    naming it (``label`` says whose weights they are).
    """
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(
            f"{label} weights not found: {weights} (train them with python -m {command})"
        )
    try:
        model.load_state_dict(load_file(weights))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise UserError(f"{label} weights {weights} are unreadable: {exc}") from None
    return model.eval()
