"""From a config to problem, model, layers and quantization table (built once, then reused)."""

import logging
import sys
from pathlib import Path

import pytest
import torch

from evoquant.config import parse_config, with_overrides
from evoquant.errors import UserError
from evoquant.pipeline import build_model_and_layers, prepare
from evoquant.quant.matmul import QuantMatMul
from evoquant.quant.model import QuantizedModel
from evoquant.rundir import TABLE_META_FILE, TABLE_TENSORS_FILE

HERE = Path(__file__).parent
PROBLEM = "tiny_problem:tiny_problem"  # tests/evoquant/tiny_problem.py
LAYERS = ["stem", "body.0", "body.2", "head"]


@pytest.fixture(autouse=True, scope="module")
def tiny_problem_importable():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        yield
    sys.modules.pop("tiny_problem", None)


def config(args=None, layers=None, **quant):
    quant = {"bit_configs": [[4, 8], [8, 8]], "alpha": {"enabled": False}} | quant
    return parse_config(
        {
            "problem": {"name": PROBLEM, "args": args or {}},
            "quant": quant,
            "layers": layers or {},
        }
    )


def layer_names(cfg) -> list[str]:
    return [layer.name for layer in build_model_and_layers(cfg)[2]]


def test_the_problem_its_eval_model_and_every_quantizable_layer():
    problem, model, layers = build_model_and_layers(config())
    assert problem.name == "tiny" and not model.training  # built in training mode
    assert [(x.name, x.kind) for x in layers] == [
        ("stem", "conv2d"),
        ("body.0", "conv2d"),
        ("body.2", "conv2d"),
        ("head", "linear"),
    ]


def test_the_problems_patterns_and_the_configs_both_apply():
    assert layer_names(config({"exclude": ["body.2"]})) == ["stem", "body.0", "head"]
    both = config({"exclude": ["body.2"]}, {"include": ["stem", "body.*"]})
    assert layer_names(both) == ["stem", "body.0"]
    excluded = config({"exclude": ["body.*"]}, {"exclude": ["stem"]})
    assert layer_names(excluded) == ["head"]


def test_a_config_pattern_that_matches_nothing_is_a_user_error():
    with pytest.raises(UserError, match="'neck.*' matches no quantizable layer"):
        build_model_and_layers(config(layers={"include": ["neck.*"]}))


def test_the_table_is_calibrated_once_then_reused(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="evoquant")
    first = prepare(config(), tmp_path)
    assert first.table.layers == LAYERS == [x.name for x in first.layers]
    assert first.table.bit_configs == [(4, 8), (8, 8)]
    assert "built quantization table for 4 layers" in caplog.text
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == sorted([TABLE_META_FILE, TABLE_TENSORS_FILE])  # in the run dir

    caplog.clear()
    again = prepare(config(), tmp_path, rebuild_stale=False)
    assert "reused quantization table for 4 layers" in caplog.text
    assert again.table.key == first.table.key
    assert sorted(p.name for p in tmp_path.iterdir()) == saved
    assert again.model is not first.model and not again.model.training


def test_a_stale_table_is_rebuilt_for_a_new_run_and_refused_on_resume(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="evoquant")
    old = prepare(config(), tmp_path).table.key
    other_data = config({"seed": 2})  # other calibration samples
    with pytest.raises(UserError, match="changed since .* was calibrated"):
        prepare(other_data, tmp_path, rebuild_stale=False)
    assert prepare(config(), tmp_path, rebuild_stale=False).table.key == old

    caplog.clear()
    rebuilt = prepare(config(bit_configs=[[4, 8], [8, 8], [16, 16]]), tmp_path)
    assert "built quantization table" in caplog.text
    assert rebuilt.table.key != old and (16, 16) in rebuilt.table.bit_configs


# ---- attention discovery and dead layers --------------------------------------------

QUANT = {"bit_configs": [[4, 8], [8, 8], [16, 16]], "alpha": {"enabled": False}}
VIT = {"name": "digits_vit", "args": {"batch_size": 16, "fitness_batches": 1}}
VIT_ARGS = VIT["args"] | {"calibration_batches": 1, "validation_batches": 0}
BERT = {"name": "bert_sdpa_problem:bert_problem"}  # tests/evoquant/bert_sdpa_problem.py
VIT_ATTENTION = [
    f"blocks.{i}.attn.{p}" for i in range(3) for p in ("q_k_matmul", "attn_v_matmul")
]
BERT_ATTENTION = [
    f"encoder.layer.{i}.attention.self.{p}"
    for i in range(2)
    for p in ("q_k_matmul", "attn_v_matmul")
]


def transformer(problem, **layers):
    if problem["name"] == "digits_vit":
        problem = {"name": "digits_vit", "args": VIT_ARGS}
    return parse_config({"problem": problem, "quant": QUANT, "layers": layers})


def matmuls(cfg) -> list[str]:
    return [x.name for x in build_model_and_layers(cfg)[2] if x.kind == "matmul"]


def test_the_attention_of_the_built_in_transformer_and_of_bert_is_found():
    assert matmuls(transformer(VIT)) == VIT_ATTENTION
    assert matmuls(transformer(BERT)) == BERT_ATTENTION


def test_layers_attention_off_leaves_the_attention_fp32():
    assert matmuls(transformer(VIT, attention="off")) == []


def test_compiling_routed_attention_is_refused_before_the_calibration(tmp_path):
    cfg = with_overrides(transformer(VIT), {"evaluator": {"compile": True}})
    with pytest.raises(UserError, match="cannot trace the routing"):
        prepare(cfg, tmp_path)
    assert not (tmp_path / TABLE_META_FILE).exists()
    prepare(with_overrides(cfg, {"layers": {"attention": "off"}}), tmp_path)
    assert (tmp_path / TABLE_META_FILE).exists()


def test_a_dead_layer_is_excluded_and_named_in_the_log(caplog):
    caplog.set_level(logging.INFO, logger="evoquant")
    names = [x.name for x in build_model_and_layers(transformer(BERT))[2]]
    assert "pooler.dense" not in names and "encoder.layer.1.output.dense" in names
    [line] = [r.getMessage() for r in caplog.records if "never reaches" in r.message]
    assert line.startswith("excluded 1 layer(s)") and line.endswith(": pooler.dense")

    caplog.clear()
    kept = [x.name for x in build_model_and_layers(transformer(BERT, dead="keep"))[2]]
    assert kept == [*names, "pooler.dense"]
    assert "keeping 1 layer(s)" in caplog.text


def difference(outputs, expected) -> float:
    """Largest difference, relative to the outputs' scale (logits reach 20: a float
    rounding there is 2e-6)."""
    return ((outputs - expected).abs().max() / expected.abs().max().clamp(min=1)).item()


@pytest.mark.parametrize("problem", [VIT, BERT], ids=["digits_vit", "bert"])
def test_the_all_fp32_genome_is_the_original_model(problem, tmp_path):
    prepared = prepare(transformer(problem), tmp_path)
    original = prepared.problem.build_model()  # built anew: no layer discovered
    assert not any(isinstance(m, QuantMatMul) for m in original.modules())
    quantized = QuantizedModel(prepared.model, prepared.table)
    kinds = [x.kind for x in prepared.layers]
    genomes = {
        "fp32": [None] * len(kinds),
        "attention_w4": [4 if kind == "matmul" else None for kind in kinds],
    }
    run = prepared.problem.run
    with torch.no_grad():
        batch = prepared.problem.fitness_batches[0]
        expected = run(original, batch)
        errors = {}
        for name, genome in genomes.items():
            quantized.apply(genome)
            errors[name] = difference(run(quantized.model, batch), expected)
    assert errors["fp32"] <= 1e-6
    # the products alone are quantized (8-bit inputs: a random BERT barely notices)
    assert errors["attention_w4"] > max(100 * errors["fp32"], 1e-5)
