import json
import logging
import math
import os

import numpy as np
import pytest

from evoquant import __version__
from evoquant import checkpoint as checkpoints
from evoquant.checkpoint import (
    Checkpoint,
    checkpoint_paths,
    read_checkpoint,
    write_checkpoint,
)
from evoquant.errors import UserError

RUN_ID = "run-1"


def load_latest(directory, run_id=RUN_ID, digests=("abc123",)):
    return checkpoints.load_latest(directory, run_id, digests)


def checkpoint(generation: int, run_id: str = RUN_ID) -> Checkpoint:
    rng = np.random.default_rng(generation)
    rng.random(3)
    return Checkpoint(
        generation=generation,
        genomes=[[8, 4, 16], [2, 8, 8]],
        objectives=[[100.0 + generation, 0.1], [1e30, 1e30]],
        rank=[0, 1],
        crowding=[math.inf, 0.3333333333333333],
        rng_state=rng.bit_generator.state,
        n_eval=2 * (generation + 1),
        config_digest="abc123",
        run_id=run_id,
    )


def test_round_trip_is_exact_including_infinity_and_rng_state(tmp_path):
    original = checkpoint(4)
    path = write_checkpoint(tmp_path, original)
    assert path.name == "gen_0004.json"
    text = path.read_text()
    assert "Infinity" not in text
    data = json.loads(text)
    assert len(data["sha256"]) == 64 and data["version"] == __version__
    loaded = read_checkpoint(path)
    assert loaded == original
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded.rng_state
    expected = np.random.default_rng(4)
    expected.random(3)
    assert restored.random() == expected.random()


def test_only_the_last_three_are_kept(tmp_path):
    for generation in range(6):
        write_checkpoint(tmp_path, checkpoint(generation))
    assert [p.name for p in checkpoint_paths(tmp_path)] == [
        "gen_0003.json",
        "gen_0004.json",
        "gen_0005.json",
    ]
    assert load_latest(tmp_path).generation == 5
    assert not list(tmp_path.glob("*.tmp"))


def test_generations_sort_by_number_not_text(tmp_path):
    write_checkpoint(tmp_path, checkpoint(9999))
    write_checkpoint(tmp_path, checkpoint(10000))
    assert load_latest(tmp_path).generation == 10000


def test_a_crash_during_the_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    write_checkpoint(tmp_path, checkpoint(1))

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_checkpoint(tmp_path, checkpoint(2))
    monkeypatch.undo()
    assert [p.name for p in checkpoint_paths(tmp_path)] == ["gen_0001.json"]
    assert load_latest(tmp_path) == checkpoint(1)


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],
        lambda text: text.replace('"n_eval": 6', '"n_eval": 7'),
        lambda text: "",
        lambda text: "[1, 2]",
    ],
    ids=["truncated", "altered", "empty", "not-an-object"],
)
def test_a_corrupt_latest_falls_back_to_the_previous_with_a_warning(
    tmp_path, caplog, damage
):
    for generation in range(3):
        write_checkpoint(tmp_path, checkpoint(generation))
    latest = tmp_path / "gen_0002.json"
    latest.write_text(damage(latest.read_text()))
    with caplog.at_level(logging.WARNING, logger="evoquant.checkpoint"):
        assert load_latest(tmp_path) == checkpoint(1)
    assert "gen_0002.json is corrupt" in caplog.text


def test_no_valid_checkpoint_is_a_user_error(tmp_path):
    for generation in range(2):
        path = write_checkpoint(tmp_path, checkpoint(generation))
        path.write_text("{")
    with pytest.raises(UserError, match="no valid checkpoint"):
        load_latest(tmp_path)


def test_no_checkpoint_at_all_is_none(tmp_path):
    assert load_latest(tmp_path / "missing") is None
    (tmp_path / "gen_0001.json.tmp").write_text("{")
    assert load_latest(tmp_path) is None


def test_a_valid_checkpoint_of_another_run_is_refused_not_skipped(tmp_path):
    write_checkpoint(tmp_path, checkpoint(1))
    write_checkpoint(tmp_path, checkpoint(99, run_id="another-run"))
    with pytest.raises(UserError, match="gen_0099.json belongs to another run"):
        load_latest(tmp_path)


def test_a_checkpoint_of_a_config_the_run_never_had_is_refused(tmp_path):
    write_checkpoint(tmp_path, checkpoint(1))
    with pytest.raises(UserError, match="belongs to another run or config"):
        load_latest(tmp_path, digests=("other",))
    assert load_latest(tmp_path, digests=("other", "abc123")) == checkpoint(1)


def test_checkpoints_are_readable_by_everyone_the_umask_allows(tmp_path):
    path = write_checkpoint(tmp_path, checkpoint(1))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_checkpoint_written_before_probes_were_counted_reads_with_none(tmp_path):
    path = write_checkpoint(tmp_path, checkpoint(2))
    data = json.loads(path.read_text())
    del data["probes"], data["sha256"]
    path.write_text(json.dumps({**data, "sha256": checkpoints._checksum(data)}))
    assert read_checkpoint(path) == checkpoint(2)
    assert read_checkpoint(path).probes == 0
