"""``validation.json`` read back: its checksum, its owner run, and the held-out errors."""

from pathlib import Path

import pytest

from evoquant.atomic import write_json_atomic
from evoquant.config import parse_config
from evoquant.errors import UserError
from evoquant.report.heldout import digest, heldout_errors, load_validation
from evoquant.rundir import VALIDATION_FILE, RunRecord

RECORD = RunRecord(
    run_id="run-1",
    config=parse_config({"problem": {"name": "digits"}}),
    config_digests=("c",),
    scoring_digest="s",
    layers=("a", "b"),
    uniform_genomes=((8, 8),),
)


def validation(**changes) -> dict:
    """What ``evoquant validate`` writes: one scored point and one that failed."""
    data = {
        "run_id": RECORD.run_id,
        "scoring_digest": RECORD.scoring_digest,
        "error": "f_cos",
        "points": [
            {"bits": [8, 8], "uniform": "W8A8", "heldout": {"error": 0.01}},
            {"bits": [2, 2], "uniform": "W2A8", "heldout": {"failed": "diverged"}},
        ],
    } | changes
    return data | {"sha256": digest(data)}


@pytest.fixture
def run(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    write_json_atomic(tmp_path / "run" / VALIDATION_FILE, validation())
    return Path("run")


def test_the_digest_is_of_the_data_not_of_its_key_order():
    assert digest({"a": 1, "b": [2]}) == digest({"b": [2], "a": 1})
    assert digest({"a": 1, "b": [2]}) != digest({"a": 1, "b": [3]})
    assert len(digest([])) == 64


def test_the_file_reads_back_without_its_checksum(run):
    data = load_validation(run, RECORD)
    expected = validation()
    del expected["sha256"]
    assert data == expected


def test_a_run_without_the_file_has_none(tmp_path):
    assert load_validation(tmp_path, RECORD) is None


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda text: text[:-20], "validation.json is damaged"),
        (lambda text: text.replace('"W8A8"', '"W9A9"'), "fails its checksum"),
    ],
    ids=["truncated", "edited"],
)
def test_a_damaged_validation_file_is_refused_by_its_readers(run, damage, match):
    path = run / VALIDATION_FILE
    path.write_text(damage(path.read_text()))
    with pytest.raises(UserError, match=match) as caught:
        load_validation(run, RECORD)
    assert "run 'evoquant validate run' to score the held-out" in str(caught.value)


@pytest.mark.parametrize("owner", [{"run_id": "run-2"}, {"scoring_digest": "t"}])
def test_a_file_of_another_run_or_scoring_is_refused(run, owner):
    write_json_atomic(run / VALIDATION_FILE, validation(**owner))
    with pytest.raises(UserError, match="belongs to another run"):
        load_validation(run, RECORD)


def test_held_out_errors_are_keyed_by_genome_and_skip_failed_ones(run):
    assert heldout_errors(load_validation(run, RECORD)) == {(8, 8): 0.01}
