"""Comparison of onnxruntime outputs with PyTorch's."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from evoquant.errors import UserError
from evoquant.export.parts import Call
from evoquant.export.validate import compare, cosine, run_calls, session


def test_cosine_of_flattened_arrays():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine(np.zeros(3), np.ones(3)) == 0.0


def test_run_and_compare_against_the_reference(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), path
    )
    x = torch.tensor([[-1.0, 2.0, 3.0], [4.0, -5.0, 6.0]])
    calls = [Call((x,), {}, torch.relu(x))]
    noisy = [Call((x,), {}, torch.relu(x) + 0.5)]
    sess = session(path)
    outputs = run_calls(sess, [{"x": x, "unused": x}])
    (row,) = compare(["y"], outputs, noisy, calls)
    assert row["max_abs_error"] == pytest.approx(0.5)
    assert row["max_abs_reference"] == pytest.approx(6.5)
    assert row["cosine_to_fp32"] == pytest.approx(1.0)
    assert 0.9 < row["cosine"] < 1.0
    with pytest.raises(
        UserError, match=r"takes inputs \['x'\] but the part received \['y'\]"
    ):
        run_calls(sess, [{"y": x}])


def test_a_graph_onnxruntime_refuses_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "broken.graph"  # not .onnx: the shared check loads those
    path.write_bytes(b"not a graph")
    with pytest.raises(UserError, match="onnxruntime cannot load") as error:
        session(path)
    assert "\n" not in str(error.value)
