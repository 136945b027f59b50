"""Build the mini BEVFusion from its mmengine config and load the shipped weights."""

from __future__ import annotations

import logging
from pathlib import Path

from mmengine.config import Config
from mmengine.logging import MMLogger
from safetensors import SafetensorError
from safetensors.torch import load_file

from evoquant.errors import UserError
from problems.bevfusion.mini.model import BEVFusionMini
from problems.bevfusion.mini.registry import MODELS

HERE = Path(__file__).parent
CONFIG = HERE / "mmconfig.py"
WEIGHTS = HERE / "weights" / "bevfusion_mini.safetensors"


def load_config(path: str | Path = CONFIG) -> Config:
    return Config.fromfile(str(path))


def build_model_from_config(path: str | Path = CONFIG) -> BEVFusionMini:
    """An untrained model, built by name through the registry."""
    return MODELS.build(load_config(path).model)


def initialised_model(path: str | Path = CONFIG) -> BEVFusionMini:
    """An untrained model after ``init_weights()`` (the config's ``init_cfg``), as a
    runner prepares it for training; mmengine's per-parameter report is not printed."""
    model = build_model_from_config(path)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model


def load_model(
    weights: str | Path = WEIGHTS, config: str | Path = CONFIG
) -> BEVFusionMini:
    """The trained FP32 model in eval mode; a missing or corrupt file is a UserError."""
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(
            f"mini BEVFusion weights not found: {weights} "
            "(train them with python -m problems.bevfusion.mini.train)"
        )
    model = build_model_from_config(config)
    try:
        model.load_state_dict(load_file(weights))
    except (SafetensorError, RuntimeError) as exc:
        raise UserError(
            f"mini BEVFusion weights {weights} are unreadable: {exc}"
        ) from None
    return model.eval()
