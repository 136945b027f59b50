"""Which table the export takes its scales from."""

import pytest
import torch

from evoquant.api import Problem
from evoquant.config import AlphaConfig, QuantConfig
from evoquant.errors import UserError
from evoquant.export.scales import deployment_table, run_table
from evoquant.quant.layers import find_layers
from evoquant.quant.table import build_quant_table

QUANT = QuantConfig(alpha=AlphaConfig(enabled=False))


@pytest.fixture
def small():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3)
    )
    batches = [torch.randn(2, 3, 8, 8)]
    problem = Problem("small", lambda: model, batches, batches, lambda m, b: m(b))
    return model.eval(), find_layers(model), problem


def test_a_tensorrt_run_table_serves_as_is(small, tmp_path):
    model, layers, problem = small
    quant = QUANT.model_copy(
        update={"scheme": "tensorrt", "bit_configs": [(8, 8), (16, 16)]}
    )
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    same, note = deployment_table(
        table, [(8, 8)], tmp_path, model, layers, problem, quant
    )
    assert same is table and note == "the run's table (tensorrt scheme)"
    assert not list(tmp_path.iterdir())


def test_missing_configs_are_calibrated_and_merged(small, tmp_path):
    model, layers, problem = small
    quant = QUANT.model_copy(update={"scheme": "tensorrt", "bit_configs": [(8, 8)]})
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    merged, note = deployment_table(
        table, [(8, 8), (16, 16)], tmp_path, model, layers, problem, quant
    )
    assert merged.bit_configs == [(8, 8), (16, 16)] and "plus W16A16" in note
    assert merged.entry("0", (8, 8)) is table.entry("0", (8, 8))
    assert (tmp_path / "quant_table.json").is_file()


def test_a_thesis_run_is_recalibrated_symmetric(small, tmp_path):
    model, layers, problem = small
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, QUANT
    )
    assert table.scheme == "thesis"
    deployed, note = deployment_table(
        table, [(8, 8), (16, 16)], tmp_path, model, layers, problem, QUANT
    )
    assert deployed.scheme == "tensorrt" and "recalibrated" in note
    entry = deployed.entry("2", (8, 8))
    assert not entry.weight_qparams.zero_point.any()
    assert not entry.input_qparams[0].zero_point.any()
    assert entry.input_qparams[0].axis is None  # per tensor


def test_a_stale_run_table_is_refused(small, tmp_path):
    model, layers, problem = small
    build_quant_table(
        model, layers, problem.run, problem.calibration_batches, QUANT
    ).save(tmp_path)
    assert run_table(tmp_path, model, layers, problem, QUANT).scheme == "thesis"
    with torch.no_grad():
        model[0].weight.mul_(2)
    with pytest.raises(UserError, match="does not match the model"):
        run_table(tmp_path, model, layers, problem, QUANT)
