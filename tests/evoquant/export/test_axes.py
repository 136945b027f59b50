"""Graph inputs named by where they sit in the call; declared axes left free, named, checked."""

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from evoquant.errors import UserError
from evoquant.export.axes import (
    bind,
    check_varying_axes,
    declared,
    name_axes,
    named_tensors,
    unmatched,
)
from evoquant.problem import BATCH_AXIS


class _Takes(nn.Module):
    def forward(self, batch: dict, scale: torch.Tensor, flag: bool = True, **extra):
        return batch["ids"] * scale


def test_inputs_are_named_by_parameter_key_and_position():
    ids, mask, scale, pair = (torch.zeros(2, 3) for _ in range(4))
    bound = bind(
        _Takes(),
        ({"ids": ids, "parts": [mask, None]},),
        {"scale": scale, "other": pair, "flag": False},
    )
    named = named_tensors(bound)
    assert list(named) == ["batch.ids", "batch.parts.0", "scale", "other"]
    assert named["batch.parts.0"] is mask
    with pytest.raises(UserError, match="does not take the captured call"):
        bind(_Takes(), (), {})


def test_declared_axes_merge_every_matching_pattern_within_the_rank():
    axes = {**BATCH_AXIS, "*ids": {1: "sequence"}, "scalar": {0: "n"}}
    assert declared("batch.ids", torch.zeros(2, 5), axes) == {0: "batch", 1: "sequence"}
    assert declared("mask", torch.zeros(2, 5), axes) == {0: "batch"}
    assert declared("scalar", torch.tensor(1.0), axes) == {}
    assert unmatched(list(axes), ["batch.ids", "mask"]) == ["scalar"]


def _graph(dims_a, dims_b, out) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, dims_a),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, dims_b),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
    )
    return helper.make_model(graph)


def test_symbols_get_the_declared_names_and_two_symbols_stay_apart():
    model = _graph(["s0", "s1"], ["s2", "s1"], ["s0", "s1"])
    named = {"a": torch.zeros(2, 3), "b": torch.zeros(2, 3)}
    name_axes(model, named, {**BATCH_AXIS, "*": {0: "batch", 1: "sequence"}})
    dims = [
        [d.dim_param for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output]
    ]
    assert dims == [
        ["batch", "sequence"],
        ["batch_2", "sequence"],
        ["batch", "sequence"],
    ]


def test_a_fixed_axis_the_calls_need_free_is_refused_in_one_line():
    model = _graph(["batch", 3], ["batch", 3], ["batch", 3])
    same = {"a": torch.zeros(2, 3), "b": torch.zeros(2, 3)}
    check_varying_axes("part p", model, [same, same])
    longer = {"a": torch.zeros(2, 5), "b": torch.zeros(2, 5)}
    with pytest.raises(UserError, match="input a axis 1 is 3..5 across") as error:
        check_varying_axes("part p", model, [same, longer])
    assert "Problem.dynamic_axes" in str(error.value) and "\n" not in str(error.value)
