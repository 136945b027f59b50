"""Sub-network export: declared parts become separate, validated graphs; the rest is reported as not exported."""

import dataclasses
import json

import pytest
import torch

from evoquant.api import ExportPart
from evoquant.errors import UserError
from evoquant.export.parts import capture_calls, resolve_parts, tensors
from evoquant.export.plan import plan_layers
from evoquant.export.run import export_genome, layer_rows
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
