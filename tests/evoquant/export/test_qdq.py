"""Quantized graphs: Q/DQ exactly where the genome says, checker-clean, close to the fake-quantized model."""

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from evoquant.config import AlphaConfig, QuantConfig, WeightConfig
from evoquant.export.plan import plan_layers
from evoquant.export.run import export_genome
from evoquant.export.validate import session
from evoquant.problem import Problem
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import QuantTable, build_quant_table
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


def blockwise_problem():
    """Two Linears with rows of 256 and 128 values: blocks of 64 split both."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 8)).eval()
    with torch.no_grad():  # a few outliers, so that each block's own scale matters
        model[0].weight[:, ::37] *= 8
    generator = torch.Generator().manual_seed(1)
    calibration = [torch.randn(16, 256, generator=generator) for _ in range(2)]
    fitness = [torch.randn(16, 256, generator=generator)]
    problem = Problem("blocks", lambda: model, calibration, fitness, lambda m, b: m(b))
    return problem, model


def w4a16_table(problem, model, layers, weights):
    quant = QuantConfig(
        scheme="tensorrt",
        bit_configs=[(4, 16)],
        alpha=AlphaConfig(start=0.9, stop=1.1, step=0.05),
        weights=weights,
    )
    return build_quant_table(
        model, layers, problem.run, problem.calibration_batches, quant
    )


def test_onnxruntime_runs_the_block_wise_weights_the_search_scored(
    tmp_path, check_graph
):
    problem, model = blockwise_problem()
    layers = find_layers(model)
    shapes = layer_weight_shapes(model, layers)
    blocks = WeightConfig(granularity="block", block_size=64)
    table = w4a16_table(problem, model, layers, blocks)
    plans = plan_layers(layers, [(4, 16)] * 2, shapes, 64)
    assert [plan.block_size for plan in plans] == [64, 64]
    weights = {layer.name: model.get_submodule(layer.name).weight for layer in layers}
    exported = export_genome(problem, model, layers, plans, table, tmp_path)
    check_graph(exported.graphs["model"], plans, table, weights)  # codes and scales
    (output,) = exported.rows[0]["validation"]
    # onnxruntime (FP16 layers) against the fake-quantized model the search scored
    assert output["cosine"] >= 0.99999
    assert output["max_abs_error"] <= 2e-3 * output["max_abs_reference"]
    # and far from what per-channel scales would have given: the search modelled blocks
    per_channel = w4a16_table(problem, model, layers, WeightConfig())
    batch = problem.fitness_batches[0]
    sess = session(tmp_path / "model.onnx")
    (session_output,) = sess.run(None, {sess.get_inputs()[0].name: batch.numpy()})
    scored = {}
    for name, candidate in (("block", table), ("per_channel", per_channel)):
        quantized = QuantizedModel(model, candidate)
        quantized.apply([(4, 16)] * 2)
        with torch.no_grad():
            scored[name] = model(batch).numpy()
        quantized.remove()
    gap = {k: np.abs(session_output - v).max() for k, v in scored.items()}
    assert gap["block"] * 10 < gap["per_channel"]
