"""``evoquant export`` on a finished digits run, and its answers to bad input."""

import json
import logging
import shutil

import onnx
import pytest

from evoquant import targets as support
from evoquant.archive import Archive
from evoquant.cli import main
from evoquant.errors import UserError
from evoquant.export.parts import capture_calls, resolve_parts
from evoquant.export.plan import LayerPlan, plan_layers
from evoquant.export.run import export_genome, trace_parts
from evoquant.export.validate import compare, run_calls, session
from evoquant.quant.layers import find_layers
from evoquant.quant.model import QuantizedModel
from evoquant.quant.table import QuantTable
from evoquant.rundir import read_run_config
from evoquant.space import SearchSpace, layer_weight_shapes
from problems.registry import build_problem
from tests.evoquant.export.tensorrt_presence import without_tensorrt

DEPLOYABLE = [(4, 16), (8, 8), (16, 16)]


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main`` adds a console handler bound to the captured stderr; drop it afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _weights(run_dir) -> dict:
    config = read_run_config(run_dir)
    model = build_problem(config.problem.name, config.problem.args).build_model()
    return {
        name: m.weight.detach()
        for name, m in model.named_modules()
        if hasattr(m, "weight")
    }


def _plans(report) -> list[LayerPlan]:
    return [
        LayerPlan(
            row["name"],
            row["kind"],
            tuple(row["searched"]),
            tuple(row["deployed"]),
            row["reason"],
            row["block_size"],
        )
        for row in report["layers"]
    ]


def test_a_target_search_only_evaluates_deployable_genomes(digits_run):
    config = read_run_config(digits_run)
    model = build_problem(config.problem.name, config.problem.args).build_model()
    layers = find_layers(model)
    shapes = layer_weight_shapes(model, layers)
    space = SearchSpace.from_config(layers, config, weight_shapes=shapes)
    archive = Archive(digits_run / "archive.sqlite")
    try:
        genomes = [record["genome"] for record in archive.records()]
    finally:
        archive.close()
    assert len(genomes) >= 6
    for genome in genomes:
        for layer, bits in zip(layers, space.bit_configs(genome)):
            shape = shapes[layer.name]
            assert support.deploy(bits, layer.kind, shape) == bits


def test_export_of_the_knee_writes_checked_graphs_and_reports(
    digits_run, tmp_path, capsys, check_graph
):
    out = tmp_path / "knee"
    assert main(["export", str(digits_run), "--pick", "knee", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "picked front point" in printed and "cosine" in printed
    assert "Deployed genome (as TensorRT runs it: 0 of 10 layers promoted)" in printed
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert report["pick"]["rule"] == "knee" and report["export_dir"] == str(out)
    assert report["scales"] == "the run's table (tensorrt scheme)"
    assert report["promotions"] == 0
    assert manifest["parts"][0]["onnx"] == "model.onnx"
    (image,) = manifest["parts"][0]["inputs"]
    assert image["shape"] == ["batch", 1, 8, 8]
    assert image["min_shape"] == image["max_shape"] == [32, 1, 8, 8]
    (validation,) = report["parts"][0]["validation"]
    print(f"digits knee: cosine {validation['cosine']:.6f}")
    assert validation["cosine"] >= 0.999
    plans = _plans(report)
    check_graph(
        onnx.load(out / "model.onnx"),
        plans,
        QuantTable.load(digits_run),
        _weights(digits_run),
    )
    markdown = (out / "REPORT.md").read_text()
    assert "layer3.conv2" in markdown and "**Deployed genome**" in markdown
    # nothing promoted, the run's own table: the re-scored deployed genome is the
    # searched one, scored by the same code on the same batches and threads
    deployed = report["deployed"]["metrics"]
    searched = report["pick"]["metrics"]
    assert deployed["fitness"]["error"] == pytest.approx(searched["error"], rel=1e-9)
    assert deployed["fitness"]["avg_weight_bits"] == searched["avg_weight_bits"]
    assert report["deployed"]["cost"]["avg_weight_bits"] == searched["avg_weight_bits"]
    assert set(deployed) == {"fitness", "heldout"}
    assert "validation batches" in report["deployed"]["data"]["heldout"]
    assert report["deployed"]["configs"] == {
        row["name"]: row["deployed"] for row in report["layers"]
    }


def test_the_search_front_carries_its_configs_and_export_deploys_them(
    digits_run, tmp_path, capsys, monkeypatch
):
    config = read_run_config(digits_run)
    model = build_problem(config.problem.name, config.problem.args).build_model()
    layers = find_layers(model)
    shapes = layer_weight_shapes(model, layers)
    space = SearchSpace.from_config(layers, config, weight_shapes=shapes)
    document = json.loads((digits_run / "front.json").read_text())
    for point in document["points"]:
        bits = [point["bits"][name] for name in space.gene_names]
        resolved = zip(layers, space.bit_configs(bits))
        assert point["configs"] == {layer.name: list(c) for layer, c in resolved}

    # a run whose cheapest point says "every layer W16A16" while its genes say otherwise
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    cheapest = document["points"][0]
    assert any(pair != [16, 16] for pair in cheapest["configs"].values())
    cheapest["configs"] = {name: [16, 16] for name in cheapest["configs"]}
    (run / "front.json").write_text(json.dumps(document))

    def no_space(*args, **kwargs):
        raise AssertionError("export rebuilt the search space")

    monkeypatch.setattr(SearchSpace, "from_config", no_space)
    out = tmp_path / "out"
    assert main(["export", str(run), "--pick", "index:0", "--out", str(out)]) == 0
    capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert [row["searched"] for row in report["layers"]] == [[16, 16]] * len(layers)
    assert report["promotions"] == 0


def _fails(argv, capsys, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evoquant: error: ") and "\n" not in err
    assert message in err


def test_bad_picks_fail_in_one_line_and_leave_the_run_alone(digits_run, capsys):
    before = sorted(p.name for p in digits_run.iterdir())
    _fails(["export", str(digits_run), "--pick", "best"], capsys, "unknown pick rule")
    _fails(
        ["export", str(digits_run), "--pick", "min-error:0.05"],
        capsys,
        "no front point has relative cost <= 0.05",
    )
    _fails(
        ["export", str(digits_run), "--pick", "max-compression:-1"],
        capsys,
        "no front point has error <= -1",
    )
    assert sorted(p.name for p in digits_run.iterdir()) == before


def test_a_run_without_a_finished_generation_has_nothing_to_export(
    digits_run, tmp_path, capsys
):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(digits_run / "run.json", unfinished / "run.json")
    _fails(["export", str(unfinished)], capsys, "no finished generation")
    _fails(["export", str(tmp_path / "nothing")], capsys, "nothing does not exist")


@without_tensorrt
def test_engine_commands_without_tensorrt_fail_in_one_line(
    digits_run, tmp_path, capsys
):
    _fails(["export", str(digits_run), "--engine"], capsys, "TensorRT engines need")
    fake = tmp_path / "model.engine"
    fake.write_bytes(b"not an engine")
    _fails(["bench-engine", str(fake)], capsys, "TensorRT engines need")
    _fails(["bench-engine", str(tmp_path / "absent.engine")], capsys, "not found")


def _bert_export(bert_factory, directory, configs=None, **args):
    problem, model, layers, table = bert_factory(**args)
    genome = configs or [DEPLOYABLE[i % 3] for i in range(len(layers))]
    plans = plan_layers(layers, genome, layer_weight_shapes(model, layers))
    exported = export_genome(problem, model, layers, plans, table, directory)
    return problem, model, layers, table, plans, exported


def _deployed_outputs(problem, model, table, plans, parts, batches):
    """Each part's fake-quantized calls on ``batches`` (the model left unwrapped)."""
    quantized = QuantizedModel(model, table)
    try:
        quantized.apply([plan.deployed for plan in plans])
        return capture_calls(model, problem.run, batches, parts)
    finally:
        quantized.remove()


@pytest.mark.slow
def test_one_bert_graph_runs_every_batch_size_and_sequence_length(
    bert_factory, tmp_path
):
    problem, model, _, table, plans, exported = _bert_export(bert_factory, tmp_path)
    assert [p.name for p in tmp_path.glob("*.onnx")] == ["model.onnx"]
    (row,) = exported.rows
    shapes = {i["name"]: i["shape"] for i in row["inputs"]}
    assert shapes["input_ids"] == ["batch", "sequence"]
    assert shapes["attention_mask"][1] == "sequence"
    assert row["outputs"][0]["shape"][1:] == ["sequence", 64]
    assert shapes and row["inputs"][0]["min_shape"] == [2, 7]
    assert row["inputs"][0]["max_shape"] == [4, 13]  # a TensorRT profile's range
    fitness_shapes = {tuple(b["input_ids"].shape) for b in problem.fitness_batches}
    assert row["calls"] == len(fitness_shapes) == 3
    assert min(o["cosine"] for o in row["validation"]) >= 0.999
    # the held-out batches (other sizes again) run in the same graph
    (part,) = exported.parts
    calls = _deployed_outputs(
        problem, model, table, plans, [part], problem.validation_batches
    )["model"]
    sess = session(tmp_path / "model.onnx")
    outputs = run_calls(sess, [part.inputs(call) for call in calls])
    names = [o.name for o in sess.get_outputs()]
    for result in compare(names, outputs, calls, calls):
        assert result["cosine"] >= 0.999, result


@pytest.mark.slow
@pytest.mark.parametrize("parts", [None, ["bert"]])
def test_an_encoder_entered_through_forward_exports_whole_or_as_a_part(
    bert_factory, tmp_path, parts
):
    *_, exported = _bert_export(
        bert_factory, tmp_path, wrapped=True, parts=parts, layers=1
    )
    (row,) = exported.rows
    names = [i["name"] for i in row["inputs"]]
    # the wrapper takes the batch dict whole; the part gets BERT's own keywords
    assert names == (
        ["input.input_ids", "input.attention_mask"]
        if parts is None
        else ["input_ids", "attention_mask"]
    )
    assert row["calls"] == 3
    assert min(o["cosine"] for o in row["validation"]) >= 0.999


def test_a_dynamic_axes_pattern_that_matches_no_input_is_refused(attention):
    problem, model, layers, _, _ = attention
    parts = resolve_parts(model, [], layers)
    calls = capture_calls(model, problem.run, problem.fitness_batches, parts)
    with pytest.raises(
        UserError, match="pattern 'input_ids' matches no input"
    ) as error:
        trace_parts(parts, calls, {"input_ids": {1: "sequence"}})
    assert "their inputs: x" in str(error.value)
