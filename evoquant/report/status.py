"""Where a run stands, read from its files without touching them."""

from __future__ import annotations

import statistics
from pathlib import Path

from evoquant.archive import Archive
from evoquant.checkpoint import load_latest
from evoquant.report.front import (
    ArchiveFront,
    archived_points,
    knee_point,
    successful,
)
from evoquant.report.hypervolume import points_hypervolume, reference_point
from evoquant.rundir import ARCHIVE_FILE, CHECKPOINT_DIR, RunDir


def generation_seconds(records: list[dict], generation: int) -> float | None:
    """The median time generations ``0..generation`` took, each from the last result
    of the one before to its own last result (generation 0 from its first).

    A median, not the span of the archive over the generations: one generation may
    hold the time a run stood still between an interrupt and its resume, or the
    sensitivity probes, and the generations left take neither.
    """
    done = [r for r in records if r["generation"] <= generation]
    if not done:
        return None
    ends: dict[int, float] = {}
    for r in done:
        ends[r["generation"]] = max(
            ends.get(r["generation"], r["created"]), r["created"]
        )
    previous, since = min(r["created"] for r in done), -1
    durations = []
    for number in sorted(ends):  # a generation served by the archive archived nothing
        durations.append((ends[number] - previous) / (number - since))
        previous, since = ends[number], number
    return statistics.median(durations)


def run_status(run_dir: str | Path) -> dict:
    """Generation, evaluations (the archive's rows: every genome scored, sensitivity
    probes and failures included, never a candidate that screening only predicted),
    hypervolume, notable points of the archive front and a time estimate.

    Everything is computed from the run's state, opened read-only: a report file that
    is missing or damaged changes nothing here.
    """
    run_dir = Path(run_dir)
    record = RunDir(run_dir).read()
    config = record.config
    checkpoint = load_latest(
        run_dir / CHECKPOINT_DIR, record.run_id, record.config_digests
    )
    generation = -1 if checkpoint is None else checkpoint.generation
    owner = (record.run_id, record.scoring_digest)
    archive = Archive(run_dir / ARCHIVE_FILE, owner=owner, read_only=True)
    try:
        records = archive.records()
    finally:
        archive.close()
    archived = archived_points(records)
    front = ArchiveFront(config.search.objectives).at(archived, generation)
    uniform = successful(archived, record.uniform_genomes)
    reference = reference_point(uniform)
    hypervolume = None if reference is None else points_hypervolume(front, reference)
    remaining = (
        config.search.generations - 1 - generation
    )  # resume --generations may pass it
    per_generation = generation_seconds(records, generation)
    eta = None if per_generation is None else max(remaining, 0) * per_generation
    best = {}
    if front:
        best = {
            "lowest error": min(front, key=lambda p: p["error"]),
            "lowest cost": min(front, key=lambda p: p["f_bits"]),
            "knee": knee_point(front, config.search.objectives),
        }
    return {
        "run_dir": str(run_dir),
        "problem": config.problem.name,
        "generation": generation,
        "generations": max(config.search.generations, generation + 1),
        "evaluations": len(records),
        "failed": sum(r["status"] == "failed" for r in records),
        "hypervolume": hypervolume,
        "front_size": len(front),
        "best": best,
        "eta_seconds": eta,
    }
