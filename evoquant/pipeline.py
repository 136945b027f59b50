"""From a config to what every command needs: problem, model, layers, quantization table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from torch import nn

from evoquant.config import RunConfig
from evoquant.errors import UserError
from evoquant.problem import Problem, build_problem
from evoquant.quant.attention import DISCOVERED, discover_attention
from evoquant.quant.layers import Layer, find_layers
from evoquant.quant.reach import unreached_layers
from evoquant.quant.table import QuantTable, load_or_build

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    problem: Problem
    model: nn.Module
    layers: list[Layer]
    table: QuantTable


def prepare_model(problem: Problem, attention: str = "auto") -> nn.Module:
    """The problem's FP32 model in eval mode, its attention products made layers
    (``attention: auto``, unless the problem keeps to its own modules) from the first
    calibration batch.

    Every process that quantizes the model (the driver, each worker) builds it here,
    so each finds the same layers under the same names.
    """
    model = problem.build_model().eval()
    wanted = attention == "auto" and problem.discover_attention
    if wanted and problem.calibration_batches:
        found = discover_attention(model, problem.run, problem.calibration_batches[0])
        if found:
            log.info(
                "%d attention product(s) made layers: %s", len(found), ", ".join(found)
            )
    return model


def check_compilable(problem: Problem, model: nn.Module) -> None:
    """``evaluator.compile`` needs a model dynamo can trace as the problem runs it."""
    if not problem.compilable:
        raise UserError(
            f"evaluator.compile: problem {problem.name} is not one torch.compile "
            "runs (Problem.compilable is False); set evaluator.compile: false"
        )
    if getattr(model, DISCOVERED, ()):
        raise UserError(
            "evaluator.compile: torch.compile cannot trace the routing of the attention "
            "products made layers; set evaluator.compile: false or layers.attention: off"
        )


def build_model_and_layers(config: RunConfig) -> tuple[Problem, nn.Module, list[Layer]]:
    """The config's problem, its FP32 model and the layers the config quantizes.

    Layers whose output the problem's outputs never use are left out (``layers.dead:
    exclude``) or kept (``keep``); either way the log names them.
    """
    problem = build_problem(config.problem.name, config.problem.args)
    model = prepare_model(problem, config.layers.attention)
    layers = find_layers(
        model,
        include=[*problem.layer_include, *config.layers.include],
        exclude=[*problem.layer_exclude, *config.layers.exclude],
    )
    if problem.calibration_batches:
        layers = _without_dead(model, layers, problem, config.layers.dead == "keep")
    return problem, model, layers


def _without_dead(
    model: nn.Module, layers: list[Layer], problem: Problem, keep: bool
) -> list[Layer]:
    dead = unreached_layers(model, layers, problem.run, problem.calibration_batches[0])
    if dead is None:
        log.info(
            "could not check which layers reach the outputs: the problem's outputs "
            "carry no autograd graph"
        )
        return layers
    if not dead:
        return layers
    log.warning(
        "%s %d layer(s) whose output never reaches the problem's outputs%s: %s",
        "keeping" if keep else "excluded",
        len(dead),
        " (layers.dead: keep)" if keep else " (layers.dead: keep searches them)",
        ", ".join(dead),
    )
    return layers if keep else [layer for layer in layers if layer.name not in dead]


def prepare(
    config: RunConfig,
    run_dir: str | Path,
    rebuild_stale: bool = True,
    progress: TextIO | None = None,
) -> Prepared:
    """Build the problem and its model, then load the run's QuantTable or calibrate anew
    (reporting on ``progress``, e.g. stderr). A model ``evaluator.compile`` cannot run
    is refused before the calibration."""
    problem, model, layers = build_model_and_layers(config)
    if config.evaluator.compile:
        check_compilable(problem, model)
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
