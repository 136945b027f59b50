"""run_status: where a run stands, computed from its state and never written.

One small digits search (local back-end, 4 x 2) is made once through the command line;
tests that change files work on copies of it.
"""

import json
import runpy
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from evoquant.archive import Archive
from evoquant.driver import open_run
from evoquant.errors import UserError
from evoquant.report.status import generation_seconds, run_status
from evoquant.rundir import (
    ARCHIVE_FILE,
    CHECKPOINT_DIR,
    FRONT_JSON,
    HYPERVOLUME_FILE,
    PLOTS_DIR,
    SUMMARY_FILE,
)
from evoquant.search import Search
from evoquant.sensitivity import probe_genomes
from evoquant.space import SearchSpace

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


SYNTHETIC = runpy.run_path(str(Path(__file__).parents[1] / "search_worker.py"))
SEEDED = SYNTHETIC["make_config"](
    seeding={"enabled": True, "share": 0.75},
    screening={"enabled": True, "factor": 4, "exploration": 0.25},
)
SPACE = SearchSpace.from_config(SYNTHETIC["LAYERS"], SEEDED)
DAY = 86_400.0


class CostedEvaluator(SYNTHETIC["SyntheticEvaluator"]):
    """The synthetic problem with the relative cost that reports read."""

    def metrics(self, bits):
        metrics = super().metrics(bits)
        if "f_bits" in metrics:
            full = 16 * sum(layer.num_weights for layer in self.space.layers)
            metrics["relative_cost"] = metrics["f_bits"] / full
        return metrics


def seeded_search(run_dir: Path, generations: int, resume: bool = False) -> list:
    """A seeded, screened synthetic search to ``generations``; the genomes it evaluated."""
    record, checkpoint, archive = open_run(run_dir, SEEDED, SPACE, resume=resume)
    evaluator = CostedEvaluator(SPACE)
    search = Search(
        SEEDED, SPACE, evaluator, archive, run_dir, record, checkpoint=checkpoint
    )
    search.run(generations)
    search.close()
    return evaluator.evaluated


@pytest.mark.slow
def test_a_screened_run_resumed_a_day_later_reads_as_an_uninterrupted_one(
    tmp_path, monkeypatch
):
    """Evaluations are the genomes evaluated (the probes among them), never the
    candidates screening only predicted; the day the run stood still is no part of
    the time a generation takes."""
    evaluated = seeded_search(tmp_path / "straight", 5)
    straight = run_status(tmp_path / "straight")
    probes = len(probe_genomes(SPACE, 8))
    assert (
        straight["evaluations"]
        == len(evaluated)
        == len(archived(tmp_path / "straight"))
    )
    assert (
        probes < straight["evaluations"] <= probes + 16 * 5
    )  # not 4 x 16 a generation

    split = tmp_path / "split"
    seeded_search(split, 3)
    later = SimpleNamespace(time=lambda clock=time.time: clock() + DAY)
    monkeypatch.setattr("evoquant.archive.time", later)
    seeded_search(split, 5, resume=True)
    resumed = run_status(split)
    assert resumed["eta_seconds"] < DAY / 10
    for status in (straight, resumed):
        del status["run_dir"], status["eta_seconds"]
    assert resumed == straight


def rows(*times_by_generation):
    return [
        {"generation": generation, "created": float(created)}
        for generation, times in enumerate(times_by_generation)
        for created in times
    ]


def test_a_generation_takes_the_median_time_not_the_time_a_run_stood_still():
    # generation 2 began after a resume 1,000 s later; 3 is still running
    records = rows([0, 1, 2], [3, 4], [1000, 1001], [1002, 1003], [1004])
    assert generation_seconds(records, 3) == 2
    assert generation_seconds(records, -1) is None
    # a generation the archive served whole archived nothing: its time is shared
    assert generation_seconds(rows([0, 2], [], [4, 6]), 2) == 2
