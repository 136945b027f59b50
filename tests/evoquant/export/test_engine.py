"""Engine precisions read back from the inspector, and engines built (GPU only)."""

import json

import pytest

from evoquant.errors import UserError
from evoquant.export.engine import (
    NOT_FOUND,
    build_engine,
    engine_differences,
    engine_precision,
    require_tensorrt,
)
from tests.evoquant.export.tensorrt_presence import needs_gpu, without_tensorrt


def _io(datatype: str) -> list[dict]:
    return [{"Name": "t", "Dimensions": [1, 8], "Format/Datatype": datatype}]


INFO = {
    "Layers": [
        {
            "Name": "stem::input0::QuantizeLinear",
            "LayerType": "Scale",
            "Inputs": _io("Row major linear FP32"),
            "Outputs": _io("Row major Int8 format"),
        },
        {
            "Name": "stem::Conv + node_relu",
            "LayerType": "CaskConvolution",
            "Inputs": _io("Thirty-two wide channel vectorized row major Int8 format"),
            "Outputs": _io("Row major linear FP32"),
            "Weights": {"Type": "Int8", "Count": 432},
        },
        {
            "Name": "myelin_gemm",
            "Metadata": "[ONNX Layer: fc::Gemm]",
            "Inputs": _io("Row major linear FP16 format"),
            "Weights": {"Type": "Int4", "Count": 640},
        },
        {
            "Name": "block.conv::Conv",
            "Inputs": _io("Channel major FP16 format where channel % 8 == 0"),
        },
        {"Name": "slow::Conv", "Inputs": _io("Row major linear FP32")},
        {"Name": "bf::MatMul", "Inputs": _io("Row major linear BFloat16 format")},
        "names-only engines list strings",
    ]
}


@pytest.mark.parametrize(
    ("nodes", "precision"),
    [
        (["stem::Conv"], "int8"),
        (["fc::Gemm"], "int4w-fp16"),
        (["block.conv::Conv"], "fp16"),
        (["slow::Conv"], "fp32"),
        (["bf::MatMul"], "bf16"),
        (["gone::Conv"], NOT_FOUND),
    ],
)
def test_engine_precision_reads_the_layer_holding_the_node(nodes, precision):
    assert engine_precision(INFO, nodes) == precision


def test_engine_differences_list_layers_the_engine_runs_otherwise():
    layers = [
        {"name": "stem", "precision": "int8", "engine_precision": "int8"},
        {"name": "slow", "precision": "int8", "engine_precision": "fp32"},
        {"name": "gone", "precision": "fp16", "engine_precision": NOT_FOUND},
        {"name": "outside", "precision": "not exported"},
    ]
    assert engine_differences(layers) == [
        {"name": "slow", "expected": "int8", "engine": "fp32"},
        {"name": "gone", "expected": "fp16", "engine": NOT_FOUND},
    ]


@without_tensorrt
def test_without_tensorrt_engines_are_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match="TensorRT engines need") as error:
        require_tensorrt()
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="TensorRT engines need"):
        build_engine(tmp_path / "x.onnx", tmp_path / "x.engine")


@needs_gpu
def test_engine_of_the_digits_export_runs_what_the_graph_says(digits_run, tmp_path):
    from evoquant.export.run import export_run

    report = export_run(digits_run, "knee", tmp_path, build_engines=True)
    assert (tmp_path / "model.engine").is_file()
    assert report["parts"][0]["latency"]["p50_ms"] > 0
    print(json.dumps(report["engine_differences"], indent=1))
    assert all(row.get("engine_precision") for row in report["layers"])
