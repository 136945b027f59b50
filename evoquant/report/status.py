"""Where a run stands, read from its files without touching them."""

from __future__ import annotations

import json
from pathlib import Path

from evoquant.archive import ARCHIVE_FILE, Archive
from evoquant.checkpoint import CHECKPOINT_DIR, load_latest
from evoquant.report.front import knee_point, pareto_front
from evoquant.report.run import HYPERVOLUME_FILE
from evoquant.search import read_run_config


def run_status(run_dir: str | Path) -> dict:
    """Generation, evaluations, hypervolume, notable front points and a time estimate."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    checkpoint = load_latest(run_dir / CHECKPOINT_DIR)
    generation = -1 if checkpoint is None else checkpoint.generation
    archive = Archive(run_dir / ARCHIVE_FILE)
    try:
        records = archive.records()
        population = [] if checkpoint is None else checkpoint.genomes
        found = archive.get_many(population)
    finally:
        archive.close()
    points = [
        {"bits": list(g)} | found[tuple(g)]
        for g in population
        if tuple(g) in found and "failed" not in found[tuple(g)]
    ]
    front = pareto_front(points, config.search.objectives) if points else []
    hv_path = run_dir / HYPERVOLUME_FILE
    hv = json.loads(hv_path.read_text()) if hv_path.exists() else {}
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
        "hypervolume": hv.get(str(generation)),
        "front_size": len(front),
        "best": best,
        "eta_seconds": eta,
    }
