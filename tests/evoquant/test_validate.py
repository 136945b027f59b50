"""``evoquant validate`` and the held-out scores written at the end of a search.

One small digits search (local back-end, 4 x 2) is made once, through the command line;
each test works on a copy of it.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from evoquant.archive import Archive
from evoquant.config import load_config
from evoquant.errors import UserError
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.export.pick import pick
from evoquant.pipeline import build_model_and_layers
from evoquant.quant.table import QuantTable
from evoquant.report.heldout import heldout_errors, load_validation
from evoquant.report.plots import plot_generation
from evoquant.rundir import RunDir
from evoquant.space import SearchSpace
from evoquant.validate import validate_run

ARGS = {"batch_size": 32, "calibration_batches": 1, "fitness_batches": 1}
CONFIG = {
    "problem": {"name": "digits", "args": ARGS},
    "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
    "search": {"pop_size": 4, "generations": 2},
    "evaluator": {"backend": "local"},
}
ERROR = "evoquant: error: "


def write_config(path: Path, config: dict = CONFIG) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cli) -> Path:
    """A finished run, never modified: tests work on copies."""
    root = tmp_path_factory.mktemp("finished")
    config = write_config(root / "small.yaml")
    assert cli("search", str(config), "--run-dir", str(root / "run"), "-q") == 0
    return root / "run"


@pytest.fixture
def run(finished, tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return Path(shutil.copytree(finished, tmp_path / "run"))


def refused(cli, capsys, *argv: str, match: str) -> None:
    assert cli(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(ERROR) and "\n" not in err, err
    assert match in err, err


def test_a_search_ends_with_held_out_scores(finished):
    # validating left the run dir as the search did: no SQLite side files
    assert not list(finished.glob("archive.sqlite-*"))
    record = RunDir(finished).read()
    validation = load_validation(finished, record)
    assert validation is not None and validation["error"] == "f_cos"
    assert validation["validation_samples"] == 365  # the held-out samples fitness left
    labels = [p["uniform"] for p in validation["points"]]
    assert labels[:4] == ["W2A8", "W4A8", "W8A8", "W16A16"]
    archive = Archive(finished / "archive.sqlite", read_only=True)
    archived = archive.get_many(p["bits"] for p in validation["points"])
    archive.close()
    for point in validation["points"]:
        assert point["search_error"] == archived[tuple(point["bits"])]["error"]
        assert point["heldout"]["error"] > 0
        # another set of samples: another error, the same cost
        assert point["heldout"]["error"] != point["search_error"]
        assert point["heldout"]["f_bits"] == archived[tuple(point["bits"])]["f_bits"]


def test_held_out_scores_are_those_of_the_validation_batches(finished):
    """The file's errors are GenomeFitness on the validation batches, FP32 references
    computed on them."""
    record = RunDir(finished).read()
    validation = load_validation(finished, record)
    problem, model, layers = build_model_and_layers(record.config)
    space = SearchSpace.from_config(layers, record.config)
    fitness = GenomeFitness(
        problem,
        model,
        QuantTable.load(finished),
        layers,
        batches=problem.validation_batches,
    )
    for point in validation["points"]:
        expected = fitness(space.bit_configs(point["bits"]))["f_cos"]
        assert point["heldout"]["f_cos"] == pytest.approx(expected, rel=1e-6)
    fitness.quantized.remove()
    errors = heldout_errors(validation)
    assert len(errors) == len(validation["points"])
    assert all(isinstance(key, tuple) for key in errors)


def test_validate_command_writes_the_same_scores_again(run, cli, capsys):
    before = (run / "validation.json").read_bytes()
    (run / "validation.json").unlink()
    assert cli("validate", "run") == 0
    out = capsys.readouterr().out
    assert "W8A8" in out and "held-out" in out and "validation.json" in out
    assert (run / "validation.json").read_bytes() == before


def test_a_problem_without_validation_batches_is_one_line(run, cli, capsys):
    meta = json.loads((run / "run.json").read_text())
    meta["config"]["problem"]["args"]["validation_batches"] = 0
    (run / "run.json").write_text(json.dumps(meta))
    (run / "validation.json").unlink()
    refused(cli, capsys, "validate", "run", match="digits has no validation batches")
    assert not (run / "validation.json").exists()


def test_a_search_without_validation_batches_says_so_and_succeeds(
    tmp_path, cli, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = json.loads(json.dumps(CONFIG))
    config["problem"]["args"]["validation_batches"] = 0
    config["search"] = {"pop_size": 2, "generations": 1}
    write_config(tmp_path / "none.yaml", config)
    assert cli("search", "none.yaml", "--run-dir", "run", "-q") == 0
    assert "no validation batches" in capsys.readouterr().err
    assert not (tmp_path / "run" / "validation.json").exists()


def test_validate_replaces_a_validation_file_of_another_run(run, tmp_path, cli):
    other = tmp_path / "other"
    write_config(tmp_path / "small.yaml")
    assert cli("search", "small.yaml", "--run-dir", str(other), "-q") == 0
    shutil.copy(other / "validation.json", run / "validation.json")
    with pytest.raises(UserError, match="belongs to another run"):
        load_validation(run, RunDir(run).read())
    validate_run(run)  # validate replaces it with the run's own
    assert (
        load_validation(run, RunDir(run).read())["run_id"] == RunDir(run).read().run_id
    )


def test_validate_refuses_what_is_no_run(tmp_path, cli, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    refused(cli, capsys, "validate", "empty", match="empty")
    refused(cli, capsys, "validate", "missing", match="missing does not exist")


def test_validate_refuses_a_run_without_its_archive(run, cli, capsys):
    (run / "archive.sqlite").unlink()
    refused(cli, capsys, "validate", "run", match="run has no archive.sqlite")
    assert not (run / "archive.sqlite").exists()


def test_validate_refuses_a_table_that_no_longer_fits(run, cli, capsys):
    """Other calibration data: the run's table, and so its scores, cannot be redone."""
    meta = json.loads((run / "run.json").read_text())
    meta["config"]["problem"]["args"]["calibration_batches"] = 2
    (run / "run.json").write_text(json.dumps(meta))
    before = (run / "validation.json").read_bytes()
    refused(cli, capsys, "validate", "run", match="quantization table does not match")
    assert (run / "validation.json").read_bytes() == before


def test_validate_refuses_a_read_only_run_dir(run, evoquant_process):
    for item in [run, *run.rglob("*")]:
        item.chmod(0o555 if item.is_dir() else 0o444)
    try:
        done = evoquant_process(
            ["validate", "run"], run.parent, honour_permissions=True
        )
    finally:
        for item in [run, *run.rglob("*")]:
            item.chmod(0o755 if item.is_dir() else 0o644)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "evoquant: error: run is read-only: validate needs to write there"
    )


def test_digits_config_validates_on_the_held_out_split():
    """The shipped config's problem has validation batches disjoint from the others."""
    config = load_config(Path(__file__).parents[2] / "problems/configs/digits.yaml")
    problem, _, _ = build_model_and_layers(config)
    images = torch.cat([x for x, _ in problem.validation_batches])
    assert images.shape == (141, 1, 8, 8)


# ---- the held-out error in the reports and in export --pick --------------------------


def test_reports_show_the_held_out_error_beside_the_search_error(finished):
    record = RunDir(finished).read()
    heldout = heldout_errors(load_validation(finished, record))
    document = json.loads((finished / "front.json").read_text())
    assert document["measured_on"]["heldout_error"] == "validation batches"
    assert document["measured_on"]["error"] == "fitness batches"
    for point in document["points"]:
        bits = tuple(point["bits"][name] for name in record.layers)
        assert point["heldout_error"] == heldout[bits]
        keys = list(point)
        assert keys.index("heldout_error") == keys.index("error") + 1
        # redrawn by validate, the front still says what each genome resolved to
        thesis = {name: [b, 16 if b > 8 else 8] for name, b in point["bits"].items()}
        assert point["configs"] == thesis
    header = (finished / "front.csv").read_text().splitlines()[0].split(",")
    assert header.index("heldout_error (validation batches)") == (
        header.index("error (fitness batches)") + 1
    )
    summary = (finished / "summary.md").read_text()
    assert "| error (fitness batches) | error (validation batches) |" in summary
    assert "front error (validation batches)" in summary  # the uniform table


def test_plot_redraws_with_held_out_errors_and_without_a_usable_file(run, cli, capsys):
    (run / "front.json").unlink()
    assert cli("plot", "run") == 0
    assert "heldout_error" in (run / "front.json").read_text()
    (run / "validation.json").write_text("{}")
    assert cli("plot", "run") == 0  # reports go on, without held-out errors
    assert "reports without held-out errors" in capsys.readouterr().err
    assert "heldout_error" not in (run / "front.json").read_text()


def test_the_plot_draws_held_out_errors(tmp_path):
    front = [
        {"bits": [2], "relative_cost": 0.1, "error": 0.5},
        {"bits": [8], "relative_cost": 0.3, "error": 0.01},
    ]
    uniform = {"W8A8": front[1]}
    plain = plot_generation(tmp_path / "plain.png", 0, front, front, uniform)
    validated = [p | {"heldout_error": 2 * p["error"]} for p in front]
    held = plot_generation(
        tmp_path / "held.png", 0, front, validated, {"W8A8": validated[1]}
    )
    assert plain.read_bytes() != held.read_bytes()


FRONT = [
    {"relative_cost": 0.10, "f_bits": 10, "error": 0.30, "heldout_error": 0.40},
    {"relative_cost": 0.20, "f_bits": 20, "error": 0.10, "heldout_error": 0.35},
    {"relative_cost": 0.25, "f_bits": 25, "error": 0.05, "heldout_error": 0.50},
    {"relative_cost": 0.50, "f_bits": 50, "error": 0.01},
]
OBJECTIVES = ["f_bits", "error"]


def test_pick_judges_the_held_out_error_on_request():
    assert pick(FRONT, "min-error:0.3", OBJECTIVES) == 2
    assert pick(FRONT, "min-error:0.3:heldout", OBJECTIVES) == 1
    assert pick(FRONT, "min-error:1", OBJECTIVES) == 3
    assert pick(FRONT, "min-error:1:heldout", OBJECTIVES) == 1  # 3 was not validated
    assert pick(FRONT, "max-compression:0.2", OBJECTIVES) == 1
    assert pick(FRONT, "max-compression:0.45:heldout", OBJECTIVES) == 0


@pytest.mark.parametrize(
    "front, rule, match",
    [
        (FRONT, "min-error:0.3:held", "'held' after '0.3' is not 'heldout'"),
        (
            FRONT,
            "max-compression:0.3:heldout",
            "no front point has heldout_error <= 0.3",
        ),
        (FRONT[3:], "min-error:1:heldout", "run 'evoquant validate RUN_DIR' first"),
    ],
)
def test_wrong_held_out_picks_are_one_line(front, rule, match):
    with pytest.raises(UserError, match=match) as caught:
        pick(front, rule, OBJECTIVES)
    assert "\n" not in str(caught.value)
