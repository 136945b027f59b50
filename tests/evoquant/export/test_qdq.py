"""Quantized graphs: Q/DQ exactly where the genome says, checker-clean, close to the fake-quantized model."""

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from evoquant.export.plan import plan_layers
from evoquant.export.run import export_genome
from evoquant.quant.layers import find_layers
from evoquant.quant.table import QuantTable
from evoquant.rundir import read_run_config
from evoquant.space import layer_weight_shapes
from problems.registry import build_problem


def _export(fixture, configs, directory):
    problem, model, layers, table, traced = fixture
    plans = plan_layers(layers, configs, layer_weight_shapes(model, layers))
    weights = {
        name: module.weight.detach().clone()
        for name, module in model.named_modules()
        if name in {layer.name for layer in layers} and hasattr(module, "weight")
    }
    exported = export_genome(problem, model, layers, plans, table, directory, traced)
    return plans, weights, exported


def _cosine(exported) -> float:
    (row,) = exported.rows
    (output,) = row["validation"]
    return output["cosine"]


def test_all_int8_digits_cnn_of_a_run(digits_run, tmp_path, check_graph):
    config = read_run_config(digits_run)
    problem = build_problem(config.problem.name, config.problem.args)
    model = problem.build_model()
    layers = find_layers(model)
    table = QuantTable.load(digits_run)
    plans, weights, exported = _export(
        (problem, model, layers, table, None), [(8, 8)] * len(layers), tmp_path
    )
    check_graph(exported.graphs["model"], plans, table, weights)
    print(f"digits all-INT8: cosine {_cosine(exported):.6f}")
    assert _cosine(exported) >= 0.999


def test_all_int8_resnet18_has_one_pair_per_weight_and_input(
    resnet, tmp_path, check_graph
):
    table = resnet[3]
    plans, weights, exported = _export(resnet, [(8, 8)] * 21, tmp_path)
    assert len(plans) == 21  # 20 convolutions and the classifier
    check_graph(exported.graphs["model"], plans, table, weights)
    assert (tmp_path / "model.onnx").is_file()
    print(f"resnet18 all-INT8: cosine {_cosine(exported):.6f}")
    assert _cosine(exported) >= 0.999


def test_mixed_resnet18_promotes_what_tensorrt_cannot_run(
    resnet, tmp_path, check_graph
):
    table = resnet[3]
    searched = [(2, 8), (4, 8), (8, 8), (16, 16)]
    configs = [searched[i % 4] for i in range(21)]
    configs[-1] = (4, 8)  # fc: 512 input features, INT4 in blocks of 128
    plans, weights, exported = _export(resnet, configs, tmp_path)
    deployed = {plan.name: plan.deployed for plan in plans}
    assert deployed["fc"] == (4, 16) and deployed["conv1"] == (8, 8)
    assert {plan.precision for plan in plans} == {"int8", "fp16", "int4w-fp16"}
    assert all(plan.promoted == (plan.searched[0] < 8) for plan in plans)
    check_graph(exported.graphs["model"], plans, table, weights)
    print(f"resnet18 mixed: cosine {_cosine(exported):.6f}")
    assert _cosine(exported) >= 0.99


@pytest.mark.parametrize("scores", [(8, 8), (16, 16)])
def test_linear_on_tokens_and_attention_products(
    attention, tmp_path, check_graph, scores
):
    problem, _, layers, table, _ = attention
    kinds = [layer.kind for layer in layers]
    assert kinds == ["conv2d", "linear", "linear", "matmul", "linear"]
    configs = [(8, 8), (4, 16), (16, 16), scores, (4, 16)]
    plans, weights, exported = _export(attention, configs, tmp_path)
    assert [plan.block_size for plan in plans] == [None, 64, None, None, 64]
    check_graph(exported.graphs["model"], plans, table, weights)
    assert _cosine(exported) >= 0.999
    (row,) = exported.rows
    assert row["inputs"][0]["shape"] == ["batch", *problem.fitness_batches[0].shape[1:]]
    assert np.isfinite(row["validation"][0]["max_abs_error"])


@pytest.mark.slow
def test_a_static_bert_of_19_int8_linears_loads_in_a_default_session(
    bert_factory, tmp_path, check_graph
):
    """The graph shape that default onnxruntime refused while the INT8 Q/DQ pairs had
    zero-point inputs: Linear layers on 3-D inputs of fixed shape (its MatMul+Add
    fusion then applies), a QuantizeLinear in front of each."""
    bert, model, layers, table = bert_factory()
    problem = dataclasses.replace(
        bert, fitness_batches=bert.fitness_batches[:1], dynamic_axes={}
    )
    assert len(layers) == 19
    plans, weights, exported = _export(
        (problem, model, layers, table, None), [(8, 8)] * len(layers), tmp_path
    )
    (row,) = exported.rows
    assert row["inputs"][0]["shape"] == list(
        problem.fitness_batches[0]["input_ids"].shape
    )
    check_graph(exported.graphs["model"], plans, table, weights)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.ort.onnx")
    ort.InferenceSession(
        str(tmp_path / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    fused = onnx.load(options.optimized_model_filepath)
    assert "Gemm" in {node.op_type for node in fused.graph.node}  # the fusion ran
    assert min(o["cosine"] for o in row["validation"]) >= 0.999
