"""``evoquant sensitivity`` on digits (one calibration and one fitness batch)."""

import json

import pytest
import yaml

from evoquant.archive import Archive
from evoquant.cli import main
from evoquant.config import parse_config
from evoquant.rundir import RunDir

CONFIG = {
    "problem": {
        "name": "digits",
        "args": {"calibration_batches": 1, "fitness_batches": 1, "batch_size": 32},
    },
    "quant": {"alpha": {"enabled": False}},
    "layers": {"fixed": {"stem.0": 8, "fc": 8}},
    "search": {"pop_size": 8, "generations": 2, "alphabet": [4, 8, 16]},
    "evaluator": {"backend": "local"},
}


def cli(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def config(tmp_path, restore_logging):
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.mark.slow
def test_sensitivity_of_a_config_then_of_its_run_dir(config, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli("sensitivity", str(config), "--run-dir", str(run_dir)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["gene", "W4", "W8", "W16"]
    assert "layer1.conv1" in out and "fitness batches" in out
    table = json.loads((run_dir / "sensitivity.json").read_text())
    assert table["probes"] == 8 * 2 + 1
    assert (run_dir / "plots" / "sensitivity.png").stat().st_size > 0
    archive = Archive(run_dir / "archive.sqlite")
    first = archive.records()
    archive.close()
    assert len(first) == 17

    assert cli("sensitivity", str(run_dir)) == 0  # everything from the archive
    archive = Archive(run_dir / "archive.sqlite")
    assert archive.records() == first
    archive.close()
    again = json.loads((run_dir / "sensitivity.json").read_text())
    assert again == table


def test_a_base_width_outside_the_alphabet_is_one_line_and_writes_nothing(
    config, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    code = cli(
        "sensitivity", str(config), "--run-dir", str(run_dir), "--base-bits", "2"
    )
    err = capsys.readouterr().err
    assert code == 2
    expected = (
        "evoquant: error: sensitivity base width 2 bits is not in search.alphabet "
        "[4, 8, 16]"
    )
    assert err.strip().splitlines() == [expected]
    assert not run_dir.exists()


def test_a_run_dir_of_another_config_is_one_line_and_left_untouched(
    config, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    other = parse_config(CONFIG | {"seed": 1})
    RunDir(run_dir).create(other, ["stem.0", "fc"], [[8, 8]])
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert cli("sensitivity", str(config), "--run-dir", str(run_dir)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"evoquant: error: {run_dir} was run with another config")
    assert line.endswith("or use another --run-dir") and "--force" not in line
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
