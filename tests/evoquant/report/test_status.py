"""run_status: where a run stands, computed from its state and never written.

One small digits search (local back-end, 4 x 2) is made once through the command line;
tests that change files work on copies of it.
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from evoquant.archive import Archive
from evoquant.errors import UserError
from evoquant.report.status import run_status
from evoquant.rundir import (
    ARCHIVE_FILE,
    CHECKPOINT_DIR,
    FRONT_JSON,
    HYPERVOLUME_FILE,
    PLOTS_DIR,
    SUMMARY_FILE,
)

CONFIG = {
    "problem": {
        "name": "digits",
        "args": {"batch_size": 32, "calibration_batches": 1, "fitness_batches": 1},
    },
    "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
    "search": {"pop_size": 4, "generations": 2},
    "evaluator": {"backend": "local"},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cli) -> Path:
    """A finished two-generation run, never modified: tests that change it use copies."""
    root = tmp_path_factory.mktemp("status")
    (root / "small.yaml").write_text(yaml.safe_dump(CONFIG))
    run = root / "run"
    assert cli("search", str(root / "small.yaml"), "--run-dir", str(run), "-q") == 0
    return run


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def archived(run: Path) -> list[dict]:
    archive = Archive(run / ARCHIVE_FILE)
    try:
        return archive.records()
    finally:
        archive.close()


def files(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Contents and times of every file but SQLite's shared-memory index, which any
    reader of the archive maps."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


def test_a_finished_run(finished):
    status = run_status(finished)
    records = archived(finished)
    assert status["run_dir"] == str(finished) and status["problem"] == "digits"
    assert (status["generation"], status["generations"]) == (1, 2)
    assert status["evaluations"] == len(records) >= 4
    assert status["failed"] == sum(r["status"] == "failed" for r in records) == 0
    assert status["eta_seconds"] == 0  # nothing left to run
    front = json.loads((finished / FRONT_JSON).read_text())["points"]
    assert status["front_size"] == len(front) >= 1
    lowest_error = min(p["error"] for p in front)
    assert status["best"]["lowest error"]["error"] == pytest.approx(lowest_error)


def test_hypervolume_and_best_points_agree_with_the_reports(finished):
    status = run_status(finished)
    reported = json.loads((finished / HYPERVOLUME_FILE).read_text())
    assert status["hypervolume"] == pytest.approx(reported["1"])
    best = status["best"]
    assert set(best) == {"lowest error", "lowest cost", "knee"}
    assert best["lowest error"]["error"] <= best["knee"]["error"]
    assert best["lowest cost"]["f_bits"] <= best["knee"]["f_bits"]
    assert best["lowest cost"]["f_bits"] <= best["lowest error"]["f_bits"]


def test_reading_the_status_writes_nothing(finished):
    before = files(finished)
    run_status(finished)
    assert files(finished) == before


def test_missing_or_damaged_reports_change_nothing(finished, copy):
    shutil.rmtree(copy / PLOTS_DIR)
    (copy / SUMMARY_FILE).unlink()
    (copy / FRONT_JSON).write_text("[not json")
    (copy / HYPERVOLUME_FILE).write_text("{garbage")
    ours, theirs = run_status(copy), run_status(finished)
    assert ours.pop("run_dir") == str(copy)
    theirs.pop("run_dir")
    assert ours == theirs


def test_a_run_stopped_after_its_first_generation_has_an_eta(copy):
    newest = max((copy / CHECKPOINT_DIR).iterdir())
    newest.unlink()  # as if the run had stopped inside generation 1
    status = run_status(copy)
    assert (status["generation"], status["generations"]) == (0, 2)
    assert status["eta_seconds"] is not None and status["eta_seconds"] >= 0
    assert 1 <= status["front_size"] <= status["evaluations"]


def test_a_directory_without_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        run_status(tmp_path)
