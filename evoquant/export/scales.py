"""The QuantTable whose scales the export writes: the run's own when it can serve, else recomputed.

A run made with ``scheme: tensorrt`` already holds symmetric scales, so its table is
used as is. A ``thesis``-scheme run holds asymmetric scales and zero-points TensorRT
cannot execute; its deployed configs are recalibrated with the tensorrt scheme (stages
1 and 2, same calibration batches and alpha grid) into the export directory, so the
deployed model is what the same method gives under TensorRT's constraints. The same
happens for deployed configs the run's table lacks (e.g. W4A16 after a promotion).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from evoquant.config import QuantConfig
from evoquant.errors import UserError
from evoquant.problem import Problem
from evoquant.quant.layers import Layer
from evoquant.quant.table import QuantTable, load_or_build, table_key
from evoquant.targets import BitConfig

log = logging.getLogger(__name__)


def run_table(
    run_dir: Path,
    model: nn.Module,
    layers: Sequence[Layer],
    problem: Problem,
    quant: QuantConfig,
) -> QuantTable:
    """The run's table, refused when it no longer matches the model and data."""
    table = QuantTable.load(run_dir)
    if table.key != table_key(model, layers, problem.calibration_batches, quant):
        raise UserError(
            f"{run_dir}: the quantization table does not match the model and data it "
            "was built for (weights or calibration data changed)"
        )
    return table


def deployment_table(
    table: QuantTable,
    needed: Sequence[BitConfig],
    directory: Path,
    model: nn.Module,
    layers: Sequence[Layer],
    problem: Problem,
    quant: QuantConfig,
) -> tuple[QuantTable, str]:
    """A tensorrt-scheme table holding every config in ``needed``, and a note on where its scales came from."""
    needed = sorted(set(needed))
    if table.scheme == "tensorrt":
        missing = [c for c in needed if c not in table.bit_configs]
        if not missing:
            return table, "the run's table (tensorrt scheme)"
        note = f"the run's table, plus {_labels(missing)} calibrated for the export"
    else:
        missing = needed
        note = (
            f"recalibrated with the tensorrt scheme ({_labels(missing)}): the run used "
            f"the {table.scheme} scheme, whose zero-points TensorRT cannot run"
        )
    log.warning("export scales: %s", note)
    extra, _ = load_or_build(
        directory,
        model,
        layers,
        problem.run,
        problem.calibration_batches,
        quant.model_copy(update={"scheme": "tensorrt", "bit_configs": missing}),
        progress=sys.stderr,
    )
    if table.scheme != "tensorrt":
        return extra, note
    merged = QuantTable(
        f"{table.key}+{extra.key}",
        "tensorrt",
        table.layers,
        [*table.bit_configs, *missing],
        table.entries | extra.entries,
    )
    return merged, note


def _labels(configs: Sequence[BitConfig]) -> str:
    return ", ".join(f"W{w}A{a}" for w, a in configs)
