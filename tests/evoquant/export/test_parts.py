"""Sub-network export: declared parts become separate, validated graphs; the rest is reported as not exported."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from evoquant.api import ExportPart
from evoquant.errors import UserError
from evoquant.export.parts import capture_calls, resolve_parts, tensors
from evoquant.export.plan import plan_layers
from evoquant.export.run import export_genome, layer_rows
from evoquant.quant.layers import find_layers
from evoquant.space import layer_weight_shapes


def test_parts_hold_their_layers_and_refuse_overlaps(attention):
    _, model, layers, _, _ = attention
    (whole,) = resolve_parts(model, [], layers)
    assert whole.name == "model" and len(whole.layers) == len(layers)
    stem, head = resolve_parts(
        model, [ExportPart("stem", "stem"), ExportPart("head", "head")], layers
    )
    assert [layer.name for layer in stem.layers] == ["stem"]
    assert head.relative("head") == ""
    with pytest.raises(UserError, match="no module 'neck'"):
        resolve_parts(model, [ExportPart("neck", "neck")], layers)
    with pytest.raises(UserError, match="overlap"):
        resolve_parts(
            model, [ExportPart("all", ""), ExportPart("stem", "stem")], layers
        )
    with pytest.raises(UserError, match="distinct names"):
        resolve_parts(model, [ExportPart("a", "stem"), ExportPart("a", "head")], layers)


def test_capture_records_each_call_before_the_layers_quantize_it(attention):
    problem, model, layers, _, _ = attention
    parts = resolve_parts(model, [ExportPart("q", "q")], layers)
    calls = capture_calls(model, problem.run, problem.fitness_batches * 2, parts)
    assert len(calls["q"]) == 2
    (x,) = tensors((calls["q"][0].args, calls["q"][0].kwargs))
    assert x.shape == (2, 64, 64)
    assert torch.equal(calls["q"][0].output, model.q(x))


def test_declared_parts_export_as_separate_validated_graphs(attention, tmp_path):
    tiny, model, layers, table, _ = attention
    problem = dataclasses.replace(
        tiny, export_parts=[ExportPart("stem", "stem"), ExportPart("head", "head")]
    )
    configs = [(8, 8), (8, 8), (16, 16), (8, 8), (4, 16)]
    plans = plan_layers(layers, configs, layer_weight_shapes(model, layers))
    exported = export_genome(problem, model, layers, plans, table, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["head.onnx", "stem.onnx"]
    for row in exported.rows:
        assert row["validation"][0]["cosine"] >= 0.999
    rows = {row["name"]: row for row in layer_rows(plans, exported.parts)}
    assert rows["head"]["part"] == "head" and rows["head"]["precision"] == "int4w-fp16"
    assert (
        rows["scores"]["part"] is None and rows["scores"]["precision"] == "not exported"
    )
    json.dumps(exported.rows)  # the report is plain data


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).relu()


class _Wrapper(nn.Module):
    """Enters its encoder the ways libraries do: ``how`` picks one."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.encoder = _Encoder()
        self.unused = _Encoder()
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "call":
            return self.encoder(x)
        if self.how == "forward":
            return self.encoder.forward(x)
        return _Encoder.forward(self.encoder, x)  # the class's function: nothing to see


def _capture(how: str, module: str = "encoder"):
    model = _Wrapper(how).eval()
    layers = find_layers(model)
    parts = resolve_parts(model, [ExportPart("enc", module)], layers)
    x = torch.randn(3, 4)
    return model, x, capture_calls(model, lambda m, b: m(b), [x], parts)


@pytest.mark.parametrize("how", ["call", "forward"])
def test_a_part_is_captured_whether_called_or_entered_through_forward(how):
    model, x, calls = _capture(how)
    (call,) = calls["enc"]
    assert torch.equal(call.args[0], x)
    assert torch.equal(call.output, model.encoder(x))
    assert "forward" not in model.encoder.__dict__  # the capture's wrapper is gone


def test_a_part_never_seen_is_refused_with_the_reason():
    with pytest.raises(UserError, match="yet 'proj' inside it did") as error:
        _capture("class")
    assert "_Encoder.forward(module, ...)" in str(error.value)
    with pytest.raises(UserError, match="the problem's run does not use it"):
        _capture("call", module="unused")
