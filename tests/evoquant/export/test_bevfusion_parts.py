"""BEVFusion mini: its declared sub-networks export as quantized graphs covering all 108 layers."""

import onnx
import pytest

from evoquant.config import AlphaConfig, QuantConfig
from evoquant.export.plan import plan_layers
from evoquant.export.run import export_genome, layer_rows
from evoquant.quant.layers import find_layers
from evoquant.quant.table import build_quant_table
from evoquant.space import layer_weight_shapes
from problems.bevfusion.mini.problem import EXPORT_PARTS
from problems.registry import build_problem

# calibrates and exports the 108-layer mini model (about 20 s)
pytestmark = pytest.mark.slow


def test_all_int8_bevfusion_mini_exports_part_by_part(tmp_path):
    problem = build_problem(
        "bevfusion_mini",
        {"batch_size": 1, "calibration_batches": 1, "fitness_batches": 1},
    )
    model = problem.build_model()
    layers = find_layers(model)
    quant = QuantConfig(
        scheme="tensorrt", bit_configs=[(8, 8)], alpha=AlphaConfig(enabled=False)
    )
    table = build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )
    plans = plan_layers(
        layers, [(8, 8)] * len(layers), layer_weight_shapes(model, layers)
    )
    exported = export_genome(problem, model, layers, plans, table, tmp_path)

    assert sorted(p.stem for p in tmp_path.glob("*.onnx")) == sorted(
        p.name for p in EXPORT_PARTS
    )
    rows = layer_rows(plans, exported.parts)
    assert len(rows) == 108 and all(row["part"] is not None for row in rows)
    quantize_nodes = 0
    for graph in exported.graphs.values():
        onnx.checker.check_model(graph, full_check=True)
        ops = [node.op_type for node in graph.graph.node]
        assert ops.count("QuantizeLinear") == ops.count("DequantizeLinear")
        quantize_nodes += ops.count("QuantizeLinear")
    # INT8 everywhere: a Q/DQ pair on each weighted layer's weight and input, two on a MatMul
    assert quantize_nodes == 2 * len(layers)
    for row in exported.rows:
        for output in row["validation"]:
            assert output["cosine"] >= 0.999, (row["name"], output)
