"""Shared export fixtures: a finished digits run under ``target: tensorrt``, resnet18 pieces, a graph walker.

Every ``.onnx`` a test writes under its ``tmp_path`` is loaded afterwards by a
default-optimised onnxruntime session (``_graphs_load_in_default_sessions``).

Torch runs on one thread here: on a shared two-core machine two OpenMP threads spin
against each other and a resnet18 forward takes 25x longer.
"""

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from evoquant.api import Problem
from evoquant.config import AlphaConfig, QuantConfig, parse_config
from evoquant.driver import run_search
from evoquant.export.parts import capture_calls, resolve_parts
from evoquant.export.plan import LayerPlan
from evoquant.export.qdq import COMPUTE_OPS, compute_node_names
from evoquant.export.run import trace_parts
from evoquant.quant.layers import find_layers
from evoquant.quant.matmul import QuantMatMul
from evoquant.quant.table import QuantTable, build_quant_table
from problems.cnn.torchvision_models import torchvision_problem
from problems.registry import build_problem

HERE = Path(__file__).parent
BERT = "bert_problem:bert_problem"  # bert_problem.py beside this file, a user's factory

TRT_CONFIGS = [(4, 16), (8, 8), (16, 16)]


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def load_default(path: Path) -> ort.InferenceSession:
    """The graph in a default onnxruntime session: every graph optimisation on."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(autouse=True)
def _graphs_load_in_default_sessions(tmp_path: Path) -> Iterator[None]:
    """Every graph an export test writes must load as a user would load it."""
    yield
    for path in sorted(tmp_path.rglob("*.onnx")):
        load_default(path)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A one-generation digits search (the shipped weights) with ``target: tensorrt``."""
    config = parse_config(
        {
            "problem": {
                "name": "digits",
                "args": {
                    "batch_size": 32,
                    "calibration_batches": 1,
                    "fitness_batches": 2,
                },
            },
            "target": "tensorrt",
            "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
            "search": {"pop_size": 6, "generations": 1},
            "evaluator": {"backend": "local"},
        }
    )
    run_dir = tmp_path_factory.mktemp("runs") / "digits-trt"
    with one_thread():
        run_search(config, run_dir, show_progress=False)
    return run_dir


def _traced(problem: Problem, model: nn.Module, layers) -> dict[str, onnx.ModelProto]:
    """The whole model's FP32 graph, traced once per session (the slow step of an export)."""
    parts = resolve_parts(model, problem.export_parts, layers)
    return trace_parts(
        parts, capture_calls(model, problem.run, problem.fitness_batches[:1], parts)
    )


@pytest.fixture(scope="session")
def resnet():
    """resnet18 (random weights, 10 classes) on 32x32 images, its tensorrt-scheme table
    and its traced FP32 graph."""
    with one_thread():
        problem = torchvision_problem(
            "resnet18",
            image_size=32,
            batch_size=4,
            calibration_batches=1,
            fitness_batches=1,
            num_classes=10,
        )
        model = problem.build_model()
        layers = find_layers(model)
        table = build_quant_table(
            model,
            layers,
            problem.run,
            problem.calibration_batches,
            QuantConfig(
                scheme="tensorrt",
                bit_configs=TRT_CONFIGS,
                alpha=AlphaConfig(enabled=False),
            ),
        )
        traced = _traced(problem, model, layers)
    return problem, model, layers, table, traced


def trt_table(problem: Problem, model: nn.Module, layers) -> QuantTable:
    """A tensorrt-scheme table of the three deployable configs (no alpha search)."""
    return build_quant_table(
        model,
        layers,
        problem.run,
        problem.calibration_batches,
        QuantConfig(
            scheme="tensorrt", bit_configs=TRT_CONFIGS, alpha=AlphaConfig(enabled=False)
        ),
    )


@pytest.fixture(scope="session")
def bert_factory():
    """``build_problem`` on the BERT factory by its import path, as a config names it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))

        def build(**args):
            with one_thread():
                problem = build_problem(BERT, args)
                model = problem.build_model().eval()
                layers = find_layers(model, exclude=problem.layer_exclude)
                return problem, model, layers, trt_table(problem, model, layers)

        yield build
    sys.modules.pop("bert_problem", None)


class TinyAttention(nn.Module):
    """Conv stem, 3-D Linears (exported as MatMul) and an attention product: the other graph shapes.

    The Linears have 64 input features, so INT4 (blocks of 64) can run on them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 3, padding=1)
        self.q = nn.Linear(64, 16)
        self.k = nn.Linear(64, 16)
        self.scores = QuantMatMul()
        self.head = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)
        scores = self.scores(self.q(tokens), self.k(tokens).transpose(1, 2))
        return self.head(scores.softmax(-1).mean(1))


@pytest.fixture(scope="session")
def attention():
    """The tiny attention model as a problem, its tensorrt-scheme table and traced graph."""
    with one_thread():
        torch.manual_seed(0)
        model = TinyAttention().eval()
        batches = [torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))]
        problem = Problem("tiny", lambda: model, batches, batches, lambda m, b: m(b))
        layers = find_layers(model)
        table = build_quant_table(
            model,
            layers,
            lambda m, b: m(b),
            batches,
            QuantConfig(
                scheme="tensorrt",
                bit_configs=TRT_CONFIGS,
                alpha=AlphaConfig(enabled=False),
            ),
        )
        traced = _traced(problem, model, layers)
    return problem, model, layers, table, traced


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _attr(node: onnx.NodeProto, name: str):
    found = [
        onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name
    ]
    return found[0] if found else None


def _assert_symmetric_int8(q: onnx.NodeProto, dq: onnx.NodeProto) -> None:
    """INT8 by ``output_dtype``, no zero-point input (what default onnxruntime loads)."""
    assert _attr(q, "output_dtype") == TensorProto.INT8
    assert len(q.input) == len(dq.input) == 2


def walk_graph(
    model: onnx.ModelProto,
    plans: Sequence[LayerPlan],
    table: QuantTable,
    weights: dict[str, torch.Tensor],
) -> None:
    """Assert the graph quantizes every layer exactly as its plan says, and nothing else.

    From each layer's node back to its inputs: W8A8 has one Q -> DQ pair per activation
    input (per tensor, the table's scale) and one on the weight (per channel, axis 0);
    W16A16 casts inputs to FP16, holds an FP16 weight and casts the output back;
    W4A16 reads an INT4 initializer through a blocked DequantizeLinear.
    """
    graph = model.graph
    producers = _producers(graph)
    inits = {t.name: t for t in graph.initializer}
    expected_q = expected_dq = 0
    for plan in plans:
        entry = table.entry(plan.name, plan.deployed)
        (node_name,) = compute_node_names(model, plan.name)
        node = next(n for n in graph.node if n.name == node_name)
        assert node.op_type in COMPUTE_OPS[plan.kind]
        inputs = (0, 1) if plan.kind == "matmul" else (0,)
        for i in inputs:
            source = producers[node.input[i]]
            if plan.deployed[1] == 16:
                assert source.op_type == "Cast"
                assert _attr(source, "to") == TensorProto.FLOAT16
                continue
            assert source.op_type == "DequantizeLinear"
            quantize = producers[source.input[0]]
            assert quantize.op_type == "QuantizeLinear"
            scale = numpy_helper.to_array(inits[source.input[1]])
            assert scale.shape == ()
            assert scale == pytest.approx(entry.input_qparams[i].scale.item())
            _assert_symmetric_int8(quantize, source)
            expected_q += 1
            expected_dq += 1
        if plan.kind == "matmul":
            continue
        weight = node.input[1]
        while weight in producers and producers[weight].op_type == "Transpose":
            weight = producers[weight].input[0]
        if plan.deployed[0] == 16:
            array = numpy_helper.to_array(inits[weight])
            assert array.dtype == np.float16
            np.testing.assert_array_equal(array, weights[plan.name].half().numpy())
        elif plan.deployed[0] == 8:
            dq = producers[weight]
            q = producers[dq.input[0]]
            assert (dq.op_type, q.op_type) == ("DequantizeLinear", "QuantizeLinear")
            assert q.input[0] == f"{plan.name}.weight" and _attr(dq, "axis") == 0
            scale = numpy_helper.to_array(inits[dq.input[1]])
            np.testing.assert_allclose(scale, entry.weight_qparams.scale.numpy())
            _assert_symmetric_int8(q, dq)
            expected_q += 1
            expected_dq += 1
        else:
            dq = producers[weight]
            assert dq.op_type == "DequantizeLinear"
            assert _attr(dq, "block_size") == plan.block_size in (64, 128)
            assert inits[dq.input[0]].data_type == TensorProto.INT4
            values = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
            scale = numpy_helper.to_array(inits[dq.input[1]])
            assert scale.dtype == np.float16
            per_value = np.repeat(scale.astype(np.float32), plan.block_size, axis=1)
            dequantized = (values * per_value).astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(dequantized, entry.weight.numpy())
            expected_dq += 1
        if plan.deployed[1] == 16:
            (consumer,) = [n for n in graph.node if node.output[0] in n.input]
            assert consumer.op_type == "Cast"
            assert _attr(consumer, "to") == TensorProto.FLOAT
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") == expected_q
    assert ops.count("DequantizeLinear") == expected_dq
    onnx.checker.check_model(model, full_check=True)


@pytest.fixture
def check_graph() -> Callable[..., None]:
    return walk_graph
