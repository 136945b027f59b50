"""Where a run stands, read from its files without touching them."""

from __future__ import annotations

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


def run_status(run_dir: str | Path) -> dict:
    """Generation, evaluations (failures counted), hypervolume, notable points of the
    archive front and a time estimate.

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
    eta = None
    if records and generation >= 0:
        per_generation = (records[-1]["created"] - records[0]["created"]) / max(
            generation, 1
        )
        eta = max(remaining, 0) * per_generation
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
