"""A search from a config: what is refused before anything is written, and what is composed.

A tiny problem (``tiny_problem.py`` beside this file: four layers, one 4-sample batch
per role) keeps every step here well under a second; the searches of real problems
run in test_cli_*.py.
"""

import json
import logging
import runpy
import sys
from pathlib import Path

import pytest

from evoquant.archive import Archive
from evoquant.checkpoint import checkpoint_paths, read_checkpoint
from evoquant.config import parse_config
from evoquant.driver import (
    build_evaluator,
    build_space,
    log_to_run_dir,
    open_run,
    run_search,
    track_progress,
)
from evoquant.errors import UserError
from evoquant.evaluate.local import LocalEvaluator
from evoquant.pipeline import prepare
from evoquant.rundir import ARCHIVE_FILE, CHECKPOINT_DIR, LOG_FILE, PLOTS_DIR, RUN_FILE
from evoquant.search import Search
from evoquant.sensitivity import probe_genomes
from evoquant.space import SearchSpace

HERE = Path(__file__).parent
PROBLEM = "tiny_problem:tiny_problem"
LAYERS = ["stem", "body.0", "body.2", "head"]


@pytest.fixture(autouse=True, scope="module")
def tiny_problem_importable():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        yield
    sys.modules.pop("tiny_problem", None)


def config(alphabet=(4, 8), args=None, **search):
    return parse_config(
        {
            "problem": {"name": PROBLEM, "args": args or {}},
            "quant": {"bit_configs": [[4, 8], [8, 8]], "alpha": {"enabled": False}},
            "search": {
                "pop_size": 4,
                "generations": 2,
                "alphabet": list(alphabet),
                **search,
            },
            "evaluator": {"backend": "local"},
        }
    )


@pytest.fixture
def prepared(tmp_path):
    return prepare(config(), tmp_path / "table")


def test_the_space_covers_the_layers_and_counts_their_macs(prepared):
    space = build_space(prepared, config())
    assert space.n_genes == 4 and space.gene_names == LAYERS
    assert space.reachable_configs() == {(4, 8), (8, 8)}
    # over the first calibration batch (4 samples): convs 6 x 6 outputs x weights
    assert list(space.macs) == [4 * 36 * 36, 4 * 36 * 144, 4 * 36 * 16, 4 * 12]


def test_a_space_that_can_ask_for_a_config_the_table_lacks_is_refused(prepared):
    with pytest.raises(
        UserError, match=r"quant.bit_configs lacks \[\(2, 8\), \(16, 16\)\]"
    ):
        build_space(prepared, config(alphabet=(2, 4, 8, 16)))


def test_the_local_back_end_scores_genomes_with_the_configs_error(prepared, tmp_path):
    cfg = config()
    space = build_space(prepared, cfg)
    backend = build_evaluator(cfg, prepared, space, tmp_path)
    assert isinstance(backend, LocalEvaluator)
    with backend:
        results = {
            tuple(bits): metrics
            for bits, metrics in backend.evaluate([[8, 8, 8, 8], [4, 4, 4, 4]])
        }
    weights = sum(layer.num_weights for layer in prepared.layers)
    assert results[(8, 8, 8, 8)]["f_bits"] == 8.0 * weights
    assert results[(4, 4, 4, 4)]["error"] > results[(8, 8, 8, 8)]["error"] > 0
    assert results[(4, 4, 4, 4)]["error"] == results[(4, 4, 4, 4)]["f_cos"]


@pytest.mark.parametrize("generations", [0, -1])
def test_generations_below_one_are_refused_before_anything_is_touched(
    tmp_path, generations
):
    run_dir = tmp_path / "runs" / "new"
    with pytest.raises(UserError, match="--generations must be at least 1"):
        run_search(config(), run_dir, generations=generations, show_progress=False)
    with pytest.raises(UserError, match="--generations must be at least 1"):
        run_search(config(), run_dir, resume=True, generations=generations)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_holding_a_run_is_refused_and_left_alone(tmp_path):
    (tmp_path / RUN_FILE).write_text("{}")
    with pytest.raises(UserError, match="already holds a run"):
        run_search(config(), tmp_path, show_progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [RUN_FILE]
    assert (tmp_path / RUN_FILE).read_text() == "{}"


def test_resuming_where_no_run_is_refused_and_nothing_is_made(tmp_path):
    with pytest.raises(UserError):
        run_search(config(), tmp_path / "none", resume=True, show_progress=False)
    assert not (tmp_path / "none").exists()


def test_bad_problem_arguments_are_refused_before_the_directory_is_made(tmp_path):
    with pytest.raises(UserError, match="seed"):
        run_search(config(args={"seed": "x"}), tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_the_run_log_gets_evoquants_records_while_it_lasts(tmp_path):
    log = logging.getLogger("evoquant.test_driver")
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.INFO)
    handlers = list(root.handlers)
    try:
        with log_to_run_dir(tmp_path):
            log.info("inside %d", 1)
            log.debug("too detailed")
        log.warning("after")
    finally:
        root.setLevel(level)
    text = (tmp_path / LOG_FILE).read_text()
    assert "INFO evoquant.test_driver: inside 1" in text
    assert "too detailed" not in text and "after" not in text
    assert root.handlers == handlers


def test_a_search_and_its_resume_write_the_run_directory(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="evoquant")  # as the command line sets it
    run_dir = tmp_path / "run"
    plots = run_search(config(), run_dir, show_progress=False)
    assert plots == run_dir / PLOTS_DIR and plots.is_dir()
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["layers"] == LAYERS
    assert "built quantization table for 4 layers" in (run_dir / LOG_FILE).read_text()
    archive = Archive(run_dir / ARCHIVE_FILE)
    evaluated = len(archive)
    archive.close()
    last = read_checkpoint(checkpoint_paths(run_dir / CHECKPOINT_DIR)[-1])
    assert last.generation == 1 and 0 < evaluated <= last.n_eval

    run_search(config(), run_dir, resume=True, generations=3, show_progress=False)
    assert "reused quantization table" in (run_dir / LOG_FILE).read_text()
    resumed = read_checkpoint(checkpoint_paths(run_dir / CHECKPOINT_DIR)[-1])
    assert resumed.generation == 2 and resumed.n_eval > last.n_eval


SYNTHETIC = runpy.run_path(str(HERE / "search_worker.py"))
SEEDED = SYNTHETIC["make_config"](
    seeding={"enabled": True, "share": 0.75},
    screening={"enabled": True, "factor": 4, "exploration": 0.25},
)
SYNTHETIC_SPACE = SearchSpace.from_config(SYNTHETIC["LAYERS"], SEEDED)


def tracked_search(run_dir, generations, resume=False):
    """A seeded and screened synthetic search to ``generations``, tracked as
    ``run_search`` tracks it: its progress, the bar's first total and description,
    the archive's size before and after, and each generation's archive hits."""
    record, checkpoint, archive = open_run(
        run_dir, SEEDED, SYNTHETIC_SPACE, resume=resume
    )
    hits = {}

    def on_generation(gen, genomes, F, counts):
        hits[gen] = counts[1]
        progress.generation_done(gen, counts[1])

    search = Search(
        SEEDED,
        SYNTHETIC_SPACE,
        SYNTHETIC["SyntheticEvaluator"](SYNTHETIC_SPACE),
        archive,
        run_dir,
        record,
        checkpoint=checkpoint,
        on_generation=on_generation,
    )
    progress = track_progress(search, generations, enabled=False)
    first = (progress.total, progress.bar.tasks[0].description)
    before = len(archive)
    search.run(generations)
    after = len(archive)
    search.close()
    return progress, first, (before, after), hits


@pytest.mark.slow
def test_the_progress_of_a_resumed_search_ends_where_an_uninterrupted_one_does(
    tmp_path,
):
    """The bar counts the run's evaluations (probes included), its detail this
    process's evaluations and archive hits: probes read back on resume are neither."""
    probes = len(probe_genomes(SYNTHETIC_SPACE, 8))
    straight, first, (_, evaluated), hits = tracked_search(tmp_path / "straight", 6)
    assert first == (probes + 16 * 6, "generation 0")  # at most: every genome new
    assert straight.total == straight.bar.tasks[0].completed == evaluated
    assert straight.evaluated == evaluated
    assert straight.cache_hits == sum(hits.values())

    tracked_search(tmp_path / "split", 3)
    resumed, first, (before, after), _ = tracked_search(tmp_path / "split", 6, True)
    assert first == (before + 16 * 3, "generation 3")  # the probes are archived
    assert after == evaluated
    assert resumed.total == resumed.bar.tasks[0].completed == evaluated
    assert resumed.evaluated == evaluated - before
    assert resumed.cache_hits == sum(hits[gen] for gen in (3, 4, 5))


@pytest.mark.slow
def test_a_compiled_search_scores_its_genomes_as_an_eager_one(tmp_path):
    from evoquant.config import with_overrides

    compiled = with_overrides(config(), {"evaluator": {"compile": True}})
    errors = {}
    for name, cfg in {"eager": config(), "compiled": compiled}.items():
        run_search(cfg, tmp_path / name, show_progress=False)
        archive = Archive(tmp_path / name / ARCHIVE_FILE)
        errors[name] = {
            tuple(r["genome"]): r["metrics"]["error"] for r in archive.records()
        }
        archive.close()
    shared = errors["eager"].keys() & errors["compiled"].keys()
    assert len(shared) >= 4
    for genome in shared:
        assert errors["compiled"][genome] == pytest.approx(
            errors["eager"][genome], rel=1e-2
        )
