"""The Markdown report is rendered from report.json alone."""

import json

from evoquant.export.report import render_markdown, write_report

REPORT = {
    "run_dir": "runs/demo",
    "export_dir": "runs/demo/export",
    "pick": {
        "rule": "knee",
        "index": 2,
        "metrics": {"relative_cost": 0.125, "avg_weight_bits": 4.0, "error": 0.01},
        "bits": {"stem": 8, "fc": 4},
    },
    "deployed": {
        "configs": {"stem": [8, 8], "fc": [4, 16]},
        "cost": {"relative_cost": 0.2, "avg_weight_bits": 6.4},
        "metrics": {
            "fitness": {"relative_cost": 0.2, "avg_weight_bits": 6.4, "error": 0.004},
            "heldout": {"relative_cost": 0.2, "avg_weight_bits": 6.4, "error": 0.006},
        },
        "data": {"fitness": "fitness batches", "heldout": "validation batches"},
    },
    "scales": "the run's table (tensorrt scheme)",
    "promotions": 1,
    "layers": [
        {
            "name": "stem",
            "kind": "conv2d",
            "part": "model",
            "searched": [2, 8],
            "deployed": [8, 8],
            "precision": "int8",
            "promoted": True,
            "reason": "TensorRT has no INT2",
            "block_size": None,
            "engine_precision": "fp32",
        },
        {
            "name": "fc",
            "kind": "linear",
            "part": None,
            "searched": [4, 16],
            "deployed": [4, 16],
            "precision": "not exported",
            "promoted": False,
            "reason": "",
            "block_size": 64,
        },
    ],
    "parts": [
        {
            "name": "model",
            "module": "",
            "onnx": "model.onnx",
            "calls": 2,
            "validation": [
                {
                    "output": "linear",
                    "cosine": 0.9999,
                    "max_abs_error": 0.01,
                    "max_abs_reference": 8.0,
                    "cosine_to_fp32": 0.99,
                }
            ],
            "latency": {"p50_ms": 0.2, "p99_ms": 0.3},
        }
    ],
    "engine_differences": [{"name": "stem", "expected": "int8", "engine": "fp32"}],
}


def test_markdown_shows_pick_checks_layers_and_engine_differences(tmp_path):
    text = render_markdown(REPORT)
    deployed, searched = text.index("**Deployed genome**"), text.index("Searched")
    assert deployed < searched
    assert (
        "(as TensorRT runs it: 1 of 2 layers promoted): relative cost 0.2, 6.4 bits "
        "per weight; error 0.004 on the fitness batches, 0.006 on the held-out"
    ) in text
    assert (
        "Searched genome: front point 2 picked by `knee`: relative cost 0.125, 4 bits "
        "per weight; error 0.01 on the fitness batches." in text
    )
    assert "| model | `(model)` | model.onnx | 2 | linear | 0.999900 |" in text
    assert "0.2 / 0.3" in text
    assert (
        "| stem | conv2d | model | W2A8 | W8A8 | int8 | fp32 | TensorRT has no INT2 |"
        in text
    )
    assert "| fc | linear | not exported |" in text
    assert "- stem: graph int8, engine fp32" in text
    write_report(tmp_path, REPORT, {"parts": []})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "REPORT.md",
        "manifest.json",
        "report.json",
    ]


def test_headline_says_when_there_is_no_held_out_data_or_a_score_failed():
    report = json.loads(json.dumps(REPORT))
    report["pick"]["metrics"]["heldout_error"] = 0.02
    report["deployed"]["metrics"] = {"fitness": {"failed": "ValueError: NaN"}}
    text = render_markdown(report)
    assert "6.4 bits per weight; error failed (ValueError: NaN) on the fitness" in text
    assert "not measured (the problem has no validation batches)" in text
    assert "0.01 on the fitness batches, 0.02 held out." in text
