"""``evoquant export``: a run dir and a pick rule in; ONNX graphs, manifest and report out.

Nothing of the run is modified: everything goes to ``<run>/export/`` (or ``out``).
The order matters: graphs are exported from the untouched FP32 model, and only then
is the model wrapped by ``QuantizedModel`` for validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from torch import nn

from evoquant.atomic import write_bytes_atomic, write_text_atomic
from evoquant.errors import UserError
from evoquant.export import engine as engines
from evoquant.export.axes import Axes, check_varying_axes, declared, unmatched
from evoquant.export.bench import bench_engine
from evoquant.export.graph import export_fp32
from evoquant.export.parts import Call, Part, capture_calls, resolve_parts
from evoquant.export.pick import load_front, pick
from evoquant.export.plan import LayerPlan, genome_configs, plan_layers
from evoquant.export.qdq import (
    LayerQuant,
    compute_node_names,
    quantize_graph,
    weight_initializer,
)
from evoquant.export.report import write_report
from evoquant.export.scales import deployment_table, run_table
from evoquant.export.score import DATA, score_configs
from evoquant.export.validate import compare, run_calls, session
from evoquant.pipeline import build_model_and_layers
from evoquant.problem import BATCH_AXIS, Problem
from evoquant.quant.layers import Layer
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import QuantTable
from evoquant.rundir import EXPORT_DIR, make_directory, read_run_config
from evoquant.space import SearchSpace, layer_weight_shapes
from fitness.bits import bit_metrics


def _example(part: Part, calls: Sequence[Call], axes: Axes) -> Call:
    """The first call whose dynamic axes are all longer than 1: torch.export fixes
    an axis it sees at size 1 (it may broadcast), so such a call would fix the batch."""
    for call in calls:
        named = part.inputs(call)
        if all(
            named[name].shape[axis] > 1
            for name in named
            for axis in declared(name, named[name], axes)
        ):
            return call
    return calls[0]


def trace_parts(
    parts: Sequence[Part],
    calls: Mapping[str, Sequence[Call]],
    axes: Axes = BATCH_AXIS,
) -> dict[str, onnx.ModelProto]:
    """Each part's FP32 graph, traced on one captured call with ``axes`` left free."""
    names = [name for part in parts for name in part.inputs(calls[part.name][0])]
    stray = unmatched(list(axes), names)
    if stray:
        raise UserError(
            f"Problem.dynamic_axes pattern {stray[0]!r} matches no input of the "
            f"exported graphs (their inputs: {', '.join(names)})"
        )
    traced = {}
    for part in parts:
        example = _example(part, calls[part.name], axes)
        label = f"export part {part.name}"
        traced[part.name] = export_fp32(
            part.module,
            example.args,
            example.kwargs,
            [weight_initializer(part.relative(layer.name)) for layer in part.layers],
            label,
            axes,
        )
        check_varying_axes(
            label, traced[part.name], [part.inputs(c) for c in calls[part.name]]
        )
    return traced


def export_graphs(
    parts: Sequence[Part],
    plans: Mapping[str, LayerPlan],
    table: QuantTable,
    traced: Mapping[str, onnx.ModelProto],
    directory: Path,
) -> dict[str, onnx.ModelProto]:
    """Each part's graph quantized as planned, checked, written to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for part in parts:
        quantized = quantize_graph(
            traced[part.name],
            [
                LayerQuant(
                    part.relative(plan.name),
                    plan.name,
                    plan.kind,
                    plan.deployed,
                    table.entry(plan.name, plan.deployed),
                    plan.block_size,
                )
                for plan in (plans[layer.name] for layer in part.layers)
            ],
        )
        onnx.checker.check_model(quantized, full_check=True)
        write_bytes_atomic(
            directory / f"{part.name}.onnx", quantized.SerializeToString()
        )
        graphs[part.name] = quantized
    return graphs


def _io(
    values: Sequence[onnx.ValueInfoProto],
    calls: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Names, shapes (dynamic axes by name) and dtypes; for inputs, the smallest and
    largest shapes the calls gave them (a TensorRT optimisation profile's range)."""
    rows = []
    for value in values:
        row = {
            "name": value.name,
            "shape": [
                d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim
            ],
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(
                value.type.tensor_type.elem_type
            ).name,
        }
        if calls:
            shapes = [tuple(call[value.name].shape) for call in calls]
            row["min_shape"] = [min(sizes) for sizes in zip(*shapes)]
            row["max_shape"] = [max(sizes) for sizes in zip(*shapes)]
        rows.append(row)
    return rows


@dataclass
class Exported:
    """The graphs of one genome and, per part, its files, interface and validation."""

    parts: list[Part]
    traced: dict[str, onnx.ModelProto]
    """The FP32 graphs, reusable for another genome of the same model."""
    graphs: dict[str, onnx.ModelProto]
    rows: list[dict[str, Any]]


def _deployed_calls(
    problem: Problem,
    model: nn.Module,
    parts: Sequence[Part],
    table: QuantTable,
    plans: Sequence[LayerPlan],
) -> dict[str, list[Call]]:
    """Each part's calls on the fitness batches, fake-quantized as deployed."""
    quantized = QuantizedModel(model, table)
    try:
        quantized.apply([plan.deployed for plan in plans])
        return capture_calls(model, problem.run, problem.fitness_batches, parts)
    finally:
        quantized.remove()


def export_genome(
    problem: Problem,
    model: nn.Module,
    layers: Sequence[Layer],
    plans: Sequence[LayerPlan],
    table: QuantTable,
    directory: Path,
    traced: Mapping[str, onnx.ModelProto] | None = None,
) -> Exported:
    """Write every part's quantized graph to ``directory`` and check it against PyTorch.

    ``traced`` (``Exported.traced`` of an earlier call) skips tracing the model again.
    """
    parts = resolve_parts(model, problem.export_parts, layers)
    fp32 = capture_calls(model, problem.run, problem.fitness_batches, parts)
    if traced is None:
        traced = trace_parts(parts, fp32, problem.dynamic_axes)
    graphs = export_graphs(
        parts, {plan.name: plan for plan in plans}, table, traced, directory
    )
    deployed = _deployed_calls(problem, model, parts, table, plans)
    rows = []
    for part in parts:
        path = directory / f"{part.name}.onnx"
        sess = session(path)
        calls = [part.inputs(call) for call in deployed[part.name]]
        rows.append(
            {
                "name": part.name,
                "module": part.spec.module,
                "onnx": path.name,
                "inputs": _io(graphs[part.name].graph.input, calls),
                "outputs": _io(graphs[part.name].graph.output),
                "layers": [layer.name for layer in part.layers],
                "calls": len(deployed[part.name]),
                "validation": compare(
                    [o.name for o in sess.get_outputs()],
                    run_calls(sess, calls),
                    deployed[part.name],
                    fp32[part.name],
                ),
            }
        )
    return Exported(parts, dict(traced), graphs, rows)


def layer_rows(
    plans: Sequence[LayerPlan], parts: Sequence[Part]
) -> list[dict[str, Any]]:
    """The report's per-layer rows: gene, deployed config, precision, promotion."""
    part_of = {layer.name: part.name for part in parts for layer in part.layers}
    return [
        {
            "name": plan.name,
            "kind": plan.kind,
            "part": part_of.get(plan.name),
            "searched": list(plan.searched),
            "deployed": list(plan.deployed),
            "precision": plan.precision if plan.name in part_of else "not exported",
            "promoted": plan.promoted,
            "reason": plan.reason,
            "block_size": plan.block_size,
        }
        for plan in plans
    ]


def add_engines(
    exported: Exported, layers: list[dict[str, Any]], directory: Path
) -> None:
    """Build each part's engine, read every layer's precision back, time it."""
    rows = {layer["name"]: layer for layer in layers}
    for part, row in zip(exported.parts, exported.rows):
        engine_path = directory / f"{part.name}.engine"
        ranges = {i["name"]: (i["min_shape"], i["max_shape"]) for i in row["inputs"]}
        info = engines.build_engine(directory / row["onnx"], engine_path, ranges)
        write_text_atomic(
            directory / f"{part.name}.engine.json", json.dumps(info, indent=1)
        )
        for layer in part.layers:
            rows[layer.name]["engine_precision"] = engines.engine_precision(
                info,
                compute_node_names(exported.graphs[part.name], layer.name),
            )
        row["engine"] = engine_path.name
        row["latency"] = bench_engine(engine_path)


def export_run(
    run_dir: str | Path,
    rule: str,
    out: str | Path | None = None,
    build_engines: bool = False,
) -> dict[str, Any]:
    """Export the front point ``rule`` picks from ``run_dir``; returns the report."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    front = load_front(run_dir)
    index = pick(front, rule, config.search.objectives)
    directory = make_directory(
        Path(out) if out is not None else run_dir / EXPORT_DIR, "export folder"
    )
    if build_engines:
        engines.require_tensorrt()
    problem, model, layers = build_model_and_layers(config)
    shapes = layer_weight_shapes(model, layers)
    plans = plan_layers(
        layers,
        genome_configs(
            front[index],
            [layer.name for layer in layers],
            lambda: SearchSpace.from_config(layers, config, weight_shapes=shapes),
        ),
        shapes,
        config.quant.weights.block_size,
    )
    searched_table = run_table(run_dir, model, layers, problem, config.quant)
    table, scales = deployment_table(
        searched_table,
        [plan.deployed for plan in plans],
        directory,
        model,
        layers,
        problem,
        config.quant,
    )
    exported = export_genome(problem, model, layers, plans, table, directory)
    layers_report = layer_rows(plans, exported.parts)
    if build_engines:
        add_engines(exported, layers_report, directory)
    scores = score_configs(
        problem, model, layers, table, [plan.deployed for plan in plans], config
    )
    report = {
        "run_dir": str(run_dir),
        "export_dir": str(directory),
        "pick": {
            "rule": rule,
            "index": index,
            "metrics": {k: v for k, v in front[index].items() if k != "bits"},
            "bits": front[index]["bits"],
        },
        "deployed": {
            "configs": {plan.name: list(plan.deployed) for plan in plans},
            "cost": bit_metrics(layers, [plan.deployed[0] for plan in plans]),
            "metrics": scores,
            "data": {role: DATA[role] for role in scores},
        },
        "scales": scales,
        "promotions": sum(plan.promoted for plan in plans),
        "layers": layers_report,
        "parts": exported.rows,
    }
    if build_engines:
        report["engine_differences"] = engines.engine_differences(layers_report)
    manifest_keys = ("name", "module", "onnx", "engine", "inputs", "outputs", "layers")
    manifest = {
        "parts": [
            {key: row[key] for key in manifest_keys if key in row}
            for row in exported.rows
        ]
    }
    write_report(directory, report, manifest)
    return report
