"""A run's reports from its state: the archive front, not the last population's."""

import json
import math
from dataclasses import replace

import pytest

from evoquant.archive import Archive
from evoquant.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from evoquant.config import RunConfig
from evoquant.export.pick import load_front, pick
from evoquant.report.run import RunReport
from evoquant.rundir import RunDir

OBJECTIVES = ("f_bits", "error")
LOST = [4, 4, 4, 2]
"""Evaluated in generation 0, on every front since, but not in generation 1's population."""


@pytest.fixture
def run(tmp_path, layer_names, uniform_points, mixed_points, make_point):
    """A two-generation run whose archive holds a non-dominated genome that survival lost.

    Generation 0: the uniform genomes and LOST (which dominates W4). Generation 1: three
    other mixed genomes and one whose error was NaN (archived as failed); its population
    keeps W2, W16 and the new mixed genomes only. pymoo asked for 12 genomes in all,
    9 were evaluated, 3 came from the archive.
    """
    config = RunConfig.model_validate(
        {"problem": {"name": "synthetic"}, "search": {"pop_size": 5}}
    )
    uniform = [p["bits"] for p in uniform_points]
    record = RunDir(tmp_path).create(
        config, layer_names, uniform, ["W2A8", "W4A8", "W8A8", "W16A16"]
    )
    archive = Archive(
        tmp_path / "archive.sqlite",
        OBJECTIVES,
        owner=(record.run_id, record.scoring_digest),
    )
    lost = next(p for p in mixed_points if p["bits"] == LOST)
    new = [p for p in mixed_points if p["bits"] not in (LOST, [8] * 4)]
    for generation, points in [(0, [*uniform_points, lost]), (1, new)]:
        for p in points:
            archive.put(
                p["bits"], {k: v for k, v in p.items() if k != "bits"}, generation
            )
    nan = make_point([2, 2, 2, 4], math.nan) | {"failed": "non-finite error: nan"}
    archive.put(nan["bits"], {k: v for k, v in nan.items() if k != "bits"}, 1)
    populations = {
        0: [p["bits"] for p in [*uniform_points, lost]],
        1: [[2] * 4, *(p["bits"] for p in new), [16] * 4],
    }
    for generation, genomes in populations.items():
        archive.put_population(generation, genomes)
    objectives = [[0.0, 0.0]] * len(populations[1])
    checkpoint = Checkpoint(
        generation=1,
        genomes=populations[1],
        objectives=objectives,
        rank=[0] * len(objectives),
        crowding=[0.0] * len(objectives),
        rng_state={},
        n_eval=12,
        config_digest=record.config_digest,
        run_id=record.run_id,
    )
    write_checkpoint(tmp_path / "checkpoints", checkpoint)
    report = RunReport(tmp_path, archive, record)
    yield report
    archive.close()


def front_bits(points) -> list[list[int]]:
    return [
        list(p["bits"].values()) if isinstance(p["bits"], dict) else p["bits"]
        for p in points
    ]


def test_a_genome_survival_dropped_stays_on_every_report(run):
    populations = run.archive.populations()
    assert LOST not in populations[1]
    views = {view.generation: view for view in run.views(populations)}
    assert LOST in front_bits(views[1].front)
    assert LOST not in front_bits(views[1].population)
    assert [2, 2, 2, 4] not in front_bits(views[1].front)  # its error was NaN
    assert set(views[1].uniform) == {"W2A8", "W4A8", "W8A8", "W16A16"}

    assert run.redraw() == 2
    front = load_front(run.run_dir)
    assert LOST in front_bits(front)
    assert json.loads((run.run_dir / "front.json").read_text())["generation"] == 1
    index = pick(front, "min-error:0.11", OBJECTIVES)
    assert front_bits(front)[index] == LOST
    summary = (run.run_dir / "summary.md").read_text()
    w4 = next(line for line in summary.splitlines() if line.startswith("| W4A8 |"))
    assert w4.endswith("| dominated |")
    hv = json.loads((run.run_dir / "hypervolume.json").read_text())
    assert hv["1"] >= hv["0"] > 0


def test_the_summary_counts_what_was_asked_evaluated_repeated_and_failed(run):
    run.redraw()
    summary = (run.run_dir / "summary.md").read_text()
    for line in [
        "- **genomes asked for**: 12",
        "- **genomes evaluated**: 9",
        "- **served from the archive (repeats)**: 3",
        "- **failed (worst objectives)**: 1",
    ]:
        assert line in summary
    (run.run_dir / "checkpoints" / "gen_0001.json").unlink()
    run.redraw()
    summary = (run.run_dir / "summary.md").read_text()
    assert "- **genomes evaluated**: 9" in summary
    assert "asked for" not in summary and "repeats" not in summary


def test_an_old_generation_redraws_as_it_was(run):
    """Generation 0's front holds only what generation 0 had evaluated."""
    (view,) = run.views({0: run.archive.populations()[0]})
    assert front_bits(view.front) == [[2] * 4, LOST, [8] * 4, [16] * 4]


def test_probes_asked_before_generation_zero_are_asked_for_not_repeats(run):
    """A seeded run's checkpoint counts the sensitivity probes beside pymoo's genomes:
    without them the archive (which holds them) would outnumber what was asked."""
    path = run.run_dir / "checkpoints" / "gen_0001.json"
    checkpoint = read_checkpoint(path)
    write_checkpoint(path.parent, replace(checkpoint, n_eval=4, probes=6))
    run.redraw()
    summary = (run.run_dir / "summary.md").read_text()
    for line in [
        "- **genomes asked for**: 10",
        "- **genomes evaluated**: 9",
        "- **served from the archive (repeats)**: 1",
    ]:
        assert line in summary
