"""From a config to problem, model, layers and quantization table (built once, then reused)."""

import logging
import sys
from pathlib import Path

import pytest

from evoquant.config import parse_config
from evoquant.errors import UserError
from evoquant.pipeline import build_model_and_layers, prepare
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
