"""A search from a config: problem, table, space, evaluator, loop, reports, log file."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from evoquant.archive import Archive
from evoquant.checkpoint import Checkpoint
from evoquant.config import RunConfig
from evoquant.errors import UserError
from evoquant.evaluate.attempt import deterministic_cuda, fixed_threads
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.evaluate.local import LocalEvaluator
from evoquant.evaluate.ray_backend import RayEvaluator
from evoquant.evaluate.ray_session import check_address
from evoquant.evaluate.worker import FitnessFactory
from evoquant.pipeline import Prepared, prepare
from evoquant.problem import validate_args
from evoquant.progress import SearchProgress
from evoquant.report.run import RunReport
from evoquant.report.sensitivity import write_sensitivity
from evoquant.rundir import (
    ARCHIVE_FILE,
    LOG_FILE,
    PLOTS_DIR,
    RUN_FILE,
    RunDir,
    RunRecord,
    make_directory,
)
from evoquant.search import Search, offspring_for, resolve_offspring, uniform_label
from evoquant.sensitivity import Sensitivity
from evoquant.space import SearchSpace, layer_weight_shapes, measure_macs

SENSITIVITY_ADVICE = (
    "sensitivity probes a run under its own config: give it that config unchanged "
    "(or the run dir alone), or use another --run-dir"
)


@contextmanager
def log_to_run_dir(run_dir: Path) -> Iterator[None]:
    """While it lasts, everything evoquant logs also goes to ``run.log`` in the run dir."""
    handler = logging.FileHandler(run_dir / LOG_FILE)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def build_space(prepared: Prepared, config: RunConfig) -> SearchSpace:
    first_batch = prepared.problem.calibration_batches[0]
    macs = measure_macs(
        prepared.model, prepared.problem.run, first_batch, prepared.layers
    )
    space = SearchSpace.from_config(
        prepared.layers,
        config,
        macs=macs,
        weight_shapes=layer_weight_shapes(prepared.model, prepared.layers),
    )
    missing = sorted(space.reachable_configs() - set(prepared.table.bit_configs))
    if missing:
        raise UserError(
            f"quant.bit_configs lacks {missing}, which the search space can produce"
        )
    return space


def build_evaluator(
    config: RunConfig, prepared: Prepared, space: SearchSpace, run_dir: Path
) -> LocalEvaluator | RayEvaluator:
    """The configured back-end, not started yet: Ray comes up when it is entered."""
    options = config.evaluator
    if options.backend == "local":
        # the FP32 references, made the way a Ray worker makes them
        with fixed_threads(options.threads_per_worker):
            fitness = GenomeFitness(
                prepared.problem,
                prepared.model,
                prepared.table,
                prepared.layers,
                config.error,
                compiled=options.compile,
            )
        return LocalEvaluator(
            fitness, space.bit_configs, options.threads_per_worker, options.retries
        )
    factory = FitnessFactory(
        config.problem.name,
        config.problem.args,
        prepared.layers,
        config.error,
        config.layers.attention,
        options.compile,
    )
    on_cuda = any(p.is_cuda for p in prepared.model.parameters())
    return RayEvaluator(
        factory, prepared.table, space.bit_configs, options, run_dir, on_cuda
    )


def worker_count(backend: LocalEvaluator | RayEvaluator) -> int:
    """Genomes the back-end scores at once: its Ray workers, or 1 in this process."""
    return backend.workers if isinstance(backend, RayEvaluator) else 1


def start_record(
    run: RunDir, config: RunConfig, space: SearchSpace, resumed: RunRecord | None
) -> RunRecord:
    """The run record: ``resumed`` (from ``check_resume``) noted as resumed, or a new run."""
    if resumed is not None:
        return run.record_resume(resumed, config)
    uniform = [space.to_bits(g) for g in space.uniform_genomes()]
    return run.create(
        config,
        [layer.name for layer in space.layers],
        uniform,
        [uniform_label(space, bits) for bits in uniform],
        space.gene_names,
    )


def open_archive(run_dir: Path, config: RunConfig, record: RunRecord) -> Archive:
    """The run's archive, bound to its run id and scoring digest."""
    return Archive(
        Path(run_dir) / ARCHIVE_FILE,
        tuple(config.search.objectives),
        owner=(record.run_id, record.scoring_digest),
    )


def open_run(
    run_dir: Path,
    config: RunConfig,
    space: SearchSpace,
    *,
    resume: bool = False,
    force: bool = False,
) -> tuple[RunRecord, Checkpoint | None, Archive]:
    """Record, resume point and archive of a new run, or of the run in ``run_dir``."""
    run = RunDir(Path(run_dir))
    record = checkpoint = None
    if resume:
        record = run.check_resume(config, force)
        checkpoint = run.resume_point(record)  # before anything is written
    record = start_record(run, config, space, record)
    return record, checkpoint, open_archive(run_dir, config, record)


def track_progress(search: Search, generations: int, enabled: bool) -> SearchProgress:
    """The live count of ``search``'s evaluations up to ``generations``: it starts at
    what the run's archive holds and expects the probes still to measure, so a resumed
    run counts as far as an uninterrupted one. The caller reports each finished
    generation (``SearchProgress.generation_done``)."""
    options = search.config.search
    progress = SearchProgress(
        max(options.pop_size, offspring_for(options, 1)),
        max(generations - 1 - search.generation, 0),
        evaluated_before=len(search.archive),
        enabled=enabled,
        generation=search.generation + 1,
    )
    progress.expect(search.pending_probes(generations))
    search.evaluator = progress.wrap(search.evaluator)
    return progress


def run_search(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    generations: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Start (or resume) the search in ``run_dir``; returns the plots folder."""
    if generations is not None and generations < 1:
        raise UserError("--generations must be at least 1")
    run = RunDir(run_dir)
    record = checkpoint = None
    if resume:  # refuse before anything in run_dir is touched
        record = run.check_resume(config, force)
        checkpoint = run.resume_point(record)
    else:
        run.check_new()
    validate_args(config.problem.name, config.problem.args)
    if config.evaluator.backend == "ray" and config.evaluator.ray_address:
        check_address(config.evaluator.ray_address)
    make_directory(run_dir, "run directory")
    deterministic_cuda()  # before calibration touches a GPU
    with log_to_run_dir(run_dir):
        prepared = prepare(
            config,
            run_dir,
            rebuild_stale=not resume,
            progress=sys.stderr if show_progress else None,
        )
        space = build_space(prepared, config)
        backend = build_evaluator(config, prepared, space, run_dir)
        total_generations = generations or config.search.generations
        # the back-end is up (Ray workers ready) before Search writes the run dir
        with ExitStack() as stack:
            stack.enter_context(backend)
            config = resolve_offspring(config, worker_count(backend))
            record = start_record(run, config, space, record)
            archive = open_archive(run_dir, config, record)
            report = RunReport(run_dir, archive, record, space.bit_configs)
            if resume:
                report.catch_up()  # a crash may have come between checkpoint and reports

            def on_generation(generation, genomes, objectives, counts):
                report.generation(generation, genomes)
                progress.generation_done(generation, counts[1])

            search = Search(
                config,
                space,
                backend,
                archive,
                run_dir,
                record,
                checkpoint=checkpoint,
                on_generation=on_generation,
            )
            progress = stack.enter_context(
                track_progress(
                    search, total_generations, show_progress and sys.stderr.isatty()
                )
            )
            try:
                search.run(generations)
            finally:
                search.close()
        return run_dir / PLOTS_DIR


def run_sensitivity(
    config: RunConfig, run_dir: Path, base_bits: int | None = None
) -> tuple[Sensitivity, Path, Path]:
    """Measure the per-layer probes into a run's archive; returns the model and the
    paths of ``sensitivity.json`` and its heat map.

    A run dir that holds this config's run is used as it is: the probes join its
    archive (those already there are not evaluated again). Otherwise the run dir is
    created as ``search`` creates it, and a later ``resume`` reuses the probes.
    """
    bits = config.search.seeding.base_bits if base_bits is None else base_bits
    if bits not in config.search.alphabet:
        raise UserError(
            f"sensitivity base width {bits} bits is not in search.alphabet "
            f"{sorted(config.search.alphabet)}"
        )
    run = RunDir(run_dir)
    existing = (run / RUN_FILE).exists()
    record = (
        run.check_resume(config, False, advice=SENSITIVITY_ADVICE) if existing else None
    )
    if not existing:
        run.check_new()
    validate_args(config.problem.name, config.problem.args)
    if config.evaluator.backend == "ray" and config.evaluator.ray_address:
        check_address(config.evaluator.ray_address)
    make_directory(run_dir, "run directory")
    deterministic_cuda()
    with log_to_run_dir(run_dir):
        prepared = prepare(config, run_dir, rebuild_stale=not existing)
        space = build_space(prepared, config)
        with build_evaluator(config, prepared, space, run_dir) as backend:
            if record is None:
                record = start_record(run, config, space, None)
            search = Search(
                config,
                space,
                backend,
                open_archive(run_dir, config, record),
                run_dir,
                record,
            )
            try:
                model = search.measure_sensitivity(bits)
            finally:
                search.close()
    return model, *write_sensitivity(run_dir, run_dir / PLOTS_DIR, model)
