"""From a config to what every command needs: problem, model, layers, quantization table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from torch import nn

from evoquant.config import RunConfig
from evoquant.problem import Problem, build_problem
from evoquant.quant.layers import Layer, find_layers
from evoquant.quant.table import QuantTable, load_or_build

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    problem: Problem
    model: nn.Module
    layers: list[Layer]
    table: QuantTable


def build_model_and_layers(config: RunConfig) -> tuple[Problem, nn.Module, list[Layer]]:
    """The config's problem, its FP32 model and the layers the config quantizes."""
    problem = build_problem(config.problem.name, config.problem.args)
    model = problem.build_model().eval()
    layers = find_layers(
        model,
        include=[*problem.layer_include, *config.layers.include],
        exclude=[*problem.layer_exclude, *config.layers.exclude],
    )
    return problem, model, layers


def prepare(
    config: RunConfig,
    run_dir: str | Path,
    rebuild_stale: bool = True,
    progress: TextIO | None = None,
) -> Prepared:
    """Build the problem and its model, then load the run's QuantTable or calibrate anew
    (reporting on ``progress``, e.g. stderr)."""
    problem, model, layers = build_model_and_layers(config)
    table, rebuilt = load_or_build(
        run_dir,
        model,
        layers,
        problem.run,
        problem.calibration_batches,
        config.quant,
        rebuild_stale,
        progress,
    )
    log.info(
        "%s quantization table for %d layers",
        "built" if rebuilt else "reused",
        len(layers),
    )
    return Prepared(problem, model, layers, table)
