"""Held-out error: the front and the uniform configurations scored on validation batches.

The search minimises the error on the fitness batches, and picks the genomes that do
best there, so that error flatters the front. The problem's validation batches share no
sample with the calibration or fitness batches; every front point and every uniform
configuration is scored on them through the same ``GenomeFitness`` (FP32 references
computed on the validation batches), and the results are kept in ``validation.json``:
state bound to the run (run id, scoring digest, a hash of the validation samples),
checksummed, replaced whole by each ``evoquant validate`` and at the end of a search.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from evoquant.archive import FAILED, Archive
from evoquant.atomic import write_json_atomic
from evoquant.config import RunConfig
from evoquant.errors import UserError
from evoquant.evaluate.fitness import scoring
from evoquant.export.scales import run_table
from evoquant.pipeline import build_model_and_layers
from evoquant.problem import Problem, sample_fingerprints
from evoquant.quant.layers import Layer
from evoquant.quant.table import QuantTable
from evoquant.report.front import ArchiveFront, archived_points
from evoquant.report.heldout import digest
from evoquant.report.run import RunReport
from evoquant.rundir import ARCHIVE_FILE, VALIDATION_FILE, RunDir, RunRecord
from evoquant.space import SearchSpace, layer_weight_shapes
from evoquant.targets import ToConfigs

log = logging.getLogger(__name__)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _heldout(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics, or a failure when one is not a finite number (JSON holds no NaN)."""
    bad = [k for k, v in metrics.items() if k != FAILED and not _finite(v)]
    return {FAILED: f"{bad[0]} is {metrics[bad[0]]}"} if bad else metrics


def genomes_to_validate(
    archive: Archive, record: RunRecord
) -> list[tuple[list[int], str | None, dict[str, Any]]]:
    """``(bits, uniform label or None, archived point)``: the uniform configurations
    that succeeded, then the rest of the archive front (the reports' front)."""
    archived = archived_points(archive.records())
    chosen: dict[tuple[int, ...], tuple[str | None, dict[str, Any]]] = {}
    for label, genome in zip(record.uniform_labels, record.uniform_genomes):
        entry = archived.get(tuple(genome))
        if entry is not None and FAILED not in entry[1]:
            chosen[tuple(genome)] = (label, entry[1])
    last = max((generation for generation, _ in archived.values()), default=0)
    for point in ArchiveFront(record.config.search.objectives).at(archived, last):
        chosen.setdefault(tuple(point["bits"]), (None, point))
    return [(list(bits), label, point) for bits, (label, point) in chosen.items()]


def score_genomes(
    problem: Problem,
    model: nn.Module,
    layers: Sequence[Layer],
    table: QuantTable,
    config: RunConfig,
    genomes: Sequence[tuple[list[int], str | None, dict[str, Any]]],
    to_configs: ToConfigs,
) -> list[dict[str, Any]]:
    """Each genome's metrics on the validation batches, beside its search error;
    ``to_configs`` resolves a genome as the search did (``SearchSpace.bit_configs``)."""
    points = []
    batches = problem.validation_batches
    with scoring(problem, model, table, layers, config, batches) as score:
        for bits, label, searched in genomes:
            error = searched.get("error")
            points.append(
                {
                    "bits": bits,
                    "uniform": label,
                    "search_error": error if _finite(error) else None,
                    "heldout": _heldout(score(to_configs(bits))),
                }
            )
    return points


def validate_run(run_dir: str | Path, required: bool = True) -> dict[str, Any] | None:
    """Score the run's front and uniform configurations on the validation batches.

    Writes and returns the ``validation.json`` record, then redraws the latest reports
    with the held-out errors. A problem without validation batches, or a run without a
    successfully evaluated genome, is a UserError when ``required``, else a warning and
    None (the end of a search).
    """
    run = RunDir(run_dir)
    record = run.read()
    if not (run / ARCHIVE_FILE).is_file():
        raise UserError(f"{run.path} has no {ARCHIVE_FILE}: nothing was evaluated")
    config = record.config
    problem, model, layers = build_model_and_layers(config)
    if not problem.validation_batches:
        message = (
            f"problem {problem.name} has no validation batches: the held-out error "
            "of the front cannot be measured"
        )
        if required:
            raise UserError(message)
        log.warning(message)
        return None
    table = run_table(run.path, model, layers, problem, config.quant)
    # not read_only: a read-only connection leaves SQLite's -wal and -shm files behind,
    # and the run dir should look as the search left it (validate writes there anyway)
    archive = Archive(run / ARCHIVE_FILE, owner=(record.run_id, record.scoring_digest))
    try:
        genomes = genomes_to_validate(archive, record)
        if not genomes:
            message = f"{run.path} has no evaluated genome to validate yet"
            if required:
                raise UserError(message)
            log.warning(message)
            return None
        space = SearchSpace.from_config(
            layers, config, weight_shapes=layer_weight_shapes(model, layers)
        )
        samples = sample_fingerprints(problem.validation_batches)
        result = {
            "run_id": record.run_id,
            "scoring_digest": record.scoring_digest,
            "validation_samples": len(samples),
            "validation_data": digest(sorted(samples)),
            "error": config.error,
            "points": score_genomes(
                problem, model, layers, table, config, genomes, space.bit_configs
            ),
        }
        result["sha256"] = digest(result)
        write_json_atomic(run / VALIDATION_FILE, result)
        redraw_latest(run, record, archive, space.bit_configs)
    finally:
        archive.close()
    return result


def redraw_latest(
    run: RunDir, record: RunRecord, archive: Archive, to_configs: ToConfigs
) -> None:
    """The last generation's plot, the front files and the summary, with held-out errors."""
    populations = archive.populations()
    if populations:
        last = max(populations)
        report = RunReport(run.path, archive, record, to_configs)
        report.generation(last, populations[last])
