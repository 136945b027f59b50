"""The export report: ``report.json`` (everything, as data) and ``REPORT.md`` rendered from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evoquant.atomic import write_text_atomic

REPORT_JSON = "report.json"
REPORT_MD = "REPORT.md"
MANIFEST = "manifest.json"


def _label(config: list[int] | tuple[int, int]) -> str:
    return f"W{config[0]}A{config[1]}"


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _cost(metrics: dict[str, Any]) -> str:
    return (
        f"relative cost {_number(metrics.get('relative_cost'))}, "
        f"{_number(metrics.get('avg_weight_bits'))} bits per weight"
    )


def _error(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return "not measured (the problem has no validation batches)"
    if "error" not in metrics:
        return f"failed ({metrics.get('failed', 'no error metric')})"
    return _number(metrics["error"])


def headline(report: dict[str, Any]) -> list[str]:
    """The deployed genome first (what runs, re-scored), then the searched one it came from."""
    pick, deployed = report["pick"], report["deployed"]
    searched = pick["metrics"]
    scores = deployed["metrics"]
    return [
        (
            f"**Deployed genome** (as TensorRT runs it: {report['promotions']} of "
            f"{len(report['layers'])} layers promoted): {_cost(deployed['cost'])}; "
            f"error {_error(scores['fitness'])} on the fitness batches, "
            f"{_error(scores.get('heldout'))} "
            "on the held-out validation batches."
        ),
        "",
        (
            f"Searched genome: front point {pick['index']} picked by `{pick['rule']}`: "
            f"{_cost(searched)}; error {_number(searched.get('error'))} on the fitness "
            "batches"
            + (
                f", {_number(searched['heldout_error'])} held out."
                if "heldout_error" in searched
                else "."
            )
        ),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """A person's view of ``report``: the deployed and searched genomes, the parts with their checks, then every layer."""
    lines = [
        f"# Export of {report['run_dir']}",
        "",
        *headline(report),
        "",
        f"Scales: {report['scales']}.",
        "",
        (
            "## Graphs (default-optimised onnxruntime vs the fake-quantized PyTorch "
            "model, fitness batches)"
        ),
        "",
        (
            "| part | module | file | calls | output | cosine | max abs error "
            "| max abs output | cosine to FP32 | engine p50 / p99 ms |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for part in report["parts"]:
        latency = part.get("latency")
        timing = (
            f"{latency['p50_ms']:.4g} / {latency['p99_ms']:.4g}"
            if latency
            else "not built"
        )
        for row in part["validation"]:
            lines.append(
                f"| {part['name']} | `{part['module'] or '(model)'}` | {part['onnx']} "
                f"| {part['calls']} | {row['output']} | {row['cosine']:.6f} "
                f"| {row['max_abs_error']:.4g} | {row['max_abs_reference']:.4g} "
                f"| {row['cosine_to_fp32']:.6f} | {timing} |"
            )
    lines += [
        "",
        "## Layers",
        "",
        (
            "| layer | kind | part | searched | deployed | precision in graph "
            "| precision in engine | promoted because |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for layer in report["layers"]:
        engine = layer.get("engine_precision") or "-"
        lines.append(
            f"| {layer['name']} | {layer['kind']} | {layer['part'] or 'not exported'} "
            f"| {_label(layer['searched'])} | {_label(layer['deployed'])} "
            f"| {layer['precision']} | {engine} | {layer['reason'] or '-'} |"
        )
    differing = report.get("engine_differences")
    if differing is not None:
        lines += ["", f"Engine layers differing from the genome: {len(differing)}."]
        lines += [
            f"- {d['name']}: graph {d['expected']}, engine {d['engine']}"
            for d in differing
        ]
    return "\n".join(lines) + "\n"


def write_report(
    directory: Path, report: dict[str, Any], manifest: dict[str, Any]
) -> None:
    """``report.json``, ``REPORT.md`` and ``manifest.json``, each written atomically."""
    write_text_atomic(directory / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    write_text_atomic(directory / REPORT_JSON, json.dumps(report, indent=1) + "\n")
    write_text_atomic(directory / REPORT_MD, render_markdown(report))
