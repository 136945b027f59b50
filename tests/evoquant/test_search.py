import json
import math
import os
import runpy
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evoquant.archive import Archive
from evoquant.checkpoint import checkpoint_paths, read_checkpoint
from evoquant.config import LayersConfig, with_overrides
from evoquant.driver import open_run
from evoquant.errors import UserError
from evoquant.rundir import RunDir, read_run_config
from evoquant.search import WORST, Search, offspring_for, resolve_offspring
from evoquant.seeding import additive_front
from evoquant.sensitivity import probe_levels
from evoquant.space import SearchSpace

WORKER = Path(__file__).with_name("search_worker.py")
synthetic = runpy.run_path(str(WORKER))
LAYERS, make_config, SyntheticEvaluator = (
    synthetic["LAYERS"],
    synthetic["make_config"],
    synthetic["SyntheticEvaluator"],
)

VARIANTS = {
    "thesis": {},
    "two_genes": {
        "policy": "two_genes",
        "crossover": "random",
        "mutation": "random_reset",
    },
    "module": {"crossover": "module", "mutation_prob": 0.2},
    "offspring": {"offspring": 24},
}


class Recorder:
    """An ``on_generation`` hook keeping every generation's population."""

    def __init__(self):
        self.generations = {}

    def __call__(self, gen, genomes, F, counts):
        self.generations[gen] = (genomes, F.tolist())


def search(
    run_dir, config, recorder=None, evaluator=None, *, resume=False, force=False
):
    """A Search composed the way the driver composes it: record, archive, hook."""
    space = SearchSpace.from_config(LAYERS, config)
    evaluator = evaluator or SyntheticEvaluator(space)
    record, checkpoint, archive = open_run(
        run_dir, config, space, resume=resume, force=force
    )
    return Search(
        config,
        space,
        evaluator,
        archive,
        run_dir,
        record,
        checkpoint=checkpoint,
        on_generation=recorder,
    )


def straight_run(run_dir, config):
    recorder = Recorder()
    s = search(run_dir, config, recorder)
    s.run()
    s.close()
    return recorder.generations


def pymoo_state(s):
    pop = s.algorithm.pop
    return {
        "X": pop.get("X").tolist(),
        "F": pop.get("F").tolist(),
        "rank": pop.get("rank").tolist(),
        "crowding": pop.get("crowding").tolist(),
        "CV": pop.get("CV").tolist(),
        "rng": s.algorithm.random_state.bit_generator.state,
        "n_gen": s.algorithm.n_gen,
        "n_eval": s.algorithm.evaluator.n_eval,
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_stop_after_three_and_resume_equals_a_straight_run(tmp_path, variant):
    config = make_config(**VARIANTS[variant])
    expected = straight_run(tmp_path / "straight", config)
    assert sorted(expected) == list(range(6))

    recorder = Recorder()
    first = search(tmp_path / "split", config, recorder)
    first.run(generations=4)
    state = pymoo_state(first)
    first.close()
    assert sorted(recorder.generations) == [0, 1, 2, 3]

    resumed = search(tmp_path / "split", config, recorder, resume=True)
    assert resumed.generation == 3
    assert pymoo_state(resumed) == state
    resumed.run()
    resumed.close()
    assert recorder.generations == expected


def test_generations_are_checkpointed_archived_and_never_evaluated_twice(tmp_path):
    config = make_config()
    recorder = Recorder()
    s = search(tmp_path, config, recorder)
    genomes, F = s.run()
    s.close()
    assert [p.name for p in checkpoint_paths(tmp_path / "checkpoints")] == [
        "gen_0003.json",
        "gen_0004.json",
        "gen_0005.json",
    ]
    last = read_checkpoint(tmp_path / "checkpoints" / "gen_0005.json")
    assert last.genomes == genomes and last.objectives == F.tolist()
    assert last.config_digest == config.digest()
    evaluated = s.evaluator.evaluated
    assert len({tuple(g) for g in evaluated}) == len(evaluated)
    archive = Archive(tmp_path / "archive.sqlite")
    assert len(archive) == len(evaluated)
    assert {r["generation"] for r in archive.records()} == set(range(6))
    archive.close()


def test_a_failed_genome_gets_the_worst_objectives(tmp_path):
    recorder = Recorder()
    s = search(tmp_path, make_config(), recorder)
    s.run(generations=1)
    s.close()
    genomes, F = recorder.generations[0]
    assert F[genomes.index([2] * len(LAYERS))] == [WORST, WORST]
    archive = Archive(tmp_path / "archive.sqlite")
    failed = [r for r in archive.records() if r["status"] == "failed"]
    assert [(r["genome"], r["error"]) for r in failed] == [
        ([2] * len(LAYERS), "diverged")
    ]
    archive.close()


class NanEvaluator(SyntheticEvaluator):
    """The synthetic problem, whose error is NaN with the first layer at 2 bits."""

    def metrics(self, bits):
        metrics = super().metrics(bits)
        if "failed" not in metrics and bits[0] == 2:
            metrics["error"] = math.nan
        return metrics


def test_a_genome_with_a_nan_error_is_archived_as_failed(tmp_path):
    recorder = Recorder()
    config = make_config()
    evaluator = NanEvaluator(SearchSpace.from_config(LAYERS, config))
    s = search(tmp_path, config, recorder, evaluator)
    s.run(generations=3)
    s.close()
    archive = Archive(tmp_path / "archive.sqlite")
    records = archive.records()
    archive.close()
    nan = [r for r in records if r["genome"][0] == 2 and len(set(r["genome"])) > 1]
    assert nan and all(r["status"] == "failed" for r in nan)
    assert {r["error"] for r in nan} == {"non-finite error: nan"}
    assert all(
        math.isfinite(r["metrics"]["error"]) for r in records if r["status"] == "ok"
    )
    for genomes, F in recorder.generations.values():
        for bits, row in zip(genomes, F):
            assert (row == [WORST, WORST]) == (bits[0] == 2)
    assert sorted(recorder.generations) == [0, 1, 2]


def test_uniform_genomes_are_labelled_by_how_they_were_made(tmp_path):
    fixed = make_config().model_copy(
        update={"layers": LayersConfig(fixed={"block1.*": 16})}
    )
    record = search(tmp_path / "fixed", fixed).record
    kept = " (fixed layers kept)"
    assert record.uniform_labels == tuple(
        f"W{w}A{a}{kept}" for w, a in [(2, 8), (4, 8), (8, 8), (16, 16)]
    )
    assert all(
        g[5] == 16 and g[0] == int(label[1:].split("A")[0])
        for g, label in zip(record.uniform_genomes, record.uniform_labels)
    )
    two = search(tmp_path / "two", make_config(policy="two_genes")).record
    assert two.uniform_labels[:3] == ("W2A8", "W2A16", "W4A8")
    assert RunDir(tmp_path / "two").read() == two


def test_a_run_file_without_uniform_labels_reads_with_default_ones(tmp_path):
    search(tmp_path, make_config()).close()
    meta = json.loads((tmp_path / "run.json").read_text())
    del meta["uniform_labels"]
    (tmp_path / "run.json").write_text(json.dumps(meta))
    assert RunDir(tmp_path).read().uniform_labels == ("W2", "W4", "W8", "W16")


def test_fixed_layers_never_change_during_a_search(tmp_path):
    config = make_config(crossover="random", mutation_prob=0.5)
    config = config.model_copy(update={"layers": LayersConfig(fixed={"block1.*": 8})})
    s = search(tmp_path, config)
    s.run(generations=4)
    s.close()
    pinned = [i for i, layer in enumerate(LAYERS) if layer.name.startswith("block1.")]
    archive = Archive(tmp_path / "archive.sqlite")
    genomes = [r["genome"] for r in archive.records()]
    archive.close()
    assert len(genomes) > 40
    assert all(g[i] == 8 for g in genomes for i in pinned)


def test_any_metric_can_be_an_objective(tmp_path):
    s = search(tmp_path / "bops", make_config(objectives=["bops", "error"]))
    _, F = s.run(generations=3)
    s.close()
    assert F.shape == (16, 2)
    with pytest.raises(UserError, match="'latency' is not a metric"):
        search(tmp_path / "latency", make_config(objectives=["latency", "error"])).run(
            2
        )


class CrashingEvaluator(SyntheticEvaluator):
    """Dies after ``after`` results, like a process killed mid-generation."""

    def __init__(self, space, after):
        super().__init__(space)
        self.after = after

    def evaluate(self, genomes):
        for n, result in enumerate(super().evaluate(genomes)):
            if n == self.after:
                raise KeyboardInterrupt
            yield result


def crash_inside(run_dir, config, crash_generation):
    """Run to ``crash_generation``, then crash after 5 results of the next one; returns
    the space, the recorder and the crashed search."""
    space = SearchSpace.from_config(LAYERS, config)
    recorder = Recorder()
    s = search(run_dir, config, recorder)
    s.run(generations=crash_generation)
    s.evaluator = CrashingEvaluator(space, after=5)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    s.close()
    return space, recorder, s


@pytest.mark.parametrize("crash_generation", [0, 2])
def test_a_crash_inside_a_generation_resumes_exactly(tmp_path, crash_generation):
    config = make_config()
    expected = straight_run(tmp_path / "straight", config)
    run_dir = tmp_path / "crashed"
    space, recorder, s = crash_inside(run_dir, config, crash_generation)

    evaluator = SyntheticEvaluator(space)
    resumed = search(run_dir, config, recorder, evaluator, resume=True)
    assert resumed.generation == crash_generation - 1
    resumed.run()
    resumed.close()
    assert recorder.generations == expected
    archived_before = s.evaluator.evaluated[:5]
    assert not {tuple(g) for g in archived_before} & {
        tuple(g) for g in evaluator.evaluated
    }


def archive_rows(path, generation):
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        query = "SELECT COUNT(*) FROM evaluations WHERE generation = ?"
        return db.execute(query, (generation,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


@pytest.mark.slow
def test_sigkill_in_generation_four_resumes_exactly(tmp_path):
    config = make_config()
    straight_dir = tmp_path / "straight"
    expected = straight_run(straight_dir, config)

    run_dir, history = tmp_path / "killed", tmp_path / "history"
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(run_dir), "0.03", str(history)],
        cwd=Path(__file__).parents[2],
    )
    # No deadline: the worker's search is finite, so either it reaches generation 4
    # or it ends (and the test fails) -- one of the two always happens.
    while archive_rows(run_dir / "archive.sqlite", 4) < 2:
        assert worker.poll() is None, "worker ended before generation 4"
        time.sleep(0.005)
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL

    assert checkpoint_paths(run_dir / "checkpoints")[-1].name == "gen_0003.json"
    archive = Archive(run_dir / "archive.sqlite")
    before = {tuple(r["genome"]) for r in archive.records()}
    archive.close()
    assert archive_rows(run_dir / "archive.sqlite", 4) >= 2

    recorder = Recorder()
    for gen in range(4):
        genomes, F = json.loads((history / f"gen_{gen}.json").read_text())
        recorder.generations[gen] = (genomes, F)
    evaluator = SyntheticEvaluator(SearchSpace.from_config(LAYERS, config))
    resumed = search(run_dir, config, recorder, evaluator, resume=True)
    resumed.run()
    resumed.close()

    assert recorder.generations == expected
    assert not before & {tuple(g) for g in evaluator.evaluated}
    killed, straight = (Archive(d / "archive.sqlite") for d in (run_dir, straight_dir))
    assert {tuple(r["genome"]): r["metrics"] for r in killed.records()} == {
        tuple(r["genome"]): r["metrics"] for r in straight.records()
    }
    assert len(killed) == len(before) + len(evaluator.evaluated)
    killed.close()
    straight.close()


def test_resuming_a_finished_run_does_nothing(tmp_path):
    config = make_config()
    straight_run(tmp_path, config)
    evaluator = SyntheticEvaluator(SearchSpace.from_config(LAYERS, config))
    s = search(tmp_path, config, evaluator=evaluator, resume=True)
    genomes, _ = s.run()
    s.close()
    assert s.generation == 5 and len(genomes) == 16 and evaluator.evaluated == []


def test_a_run_can_be_extended_past_its_configured_generations(tmp_path):
    config = make_config(generations=2)
    straight_run(tmp_path, config)
    s = search(tmp_path, config, resume=True)
    s.run(generations=5)
    s.close()
    assert s.generation == 4


def test_resume_of_a_directory_without_a_run_is_a_user_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="is not an evoquant run directory"):
        search(tmp_path, make_config(), resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_new_search_refuses_an_existing_run(tmp_path):
    search(tmp_path, make_config()).close()
    with pytest.raises(UserError, match="already holds a run"):
        search(tmp_path, make_config())


def test_a_different_config_needs_force(tmp_path):
    straight_run(tmp_path, make_config(generations=1))
    other = make_config(generations=1, mutation_prob=0.3)
    with pytest.raises(UserError, match="another config"):
        search(tmp_path, other, resume=True)
    forced = search(tmp_path, other, resume=True, force=True)
    forced.run(2)
    forced.close()
    assert read_run_config(tmp_path) == other
    search(tmp_path, other, resume=True).close()


def test_a_corrupt_run_file_is_a_user_error(tmp_path):
    search(tmp_path, make_config()).close()
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(UserError, match="run.json is corrupt"):
        search(tmp_path, make_config(), resume=True)


def test_all_checkpoints_corrupt_is_a_user_error(tmp_path):
    straight_run(tmp_path, make_config(generations=1))
    for path in checkpoint_paths(tmp_path / "checkpoints"):
        path.write_text("garbage")
    with pytest.raises(UserError, match="no valid checkpoint"):
        search(tmp_path, make_config(generations=1), resume=True)


def test_run_config_round_trips_through_the_run_dir(tmp_path):
    config = make_config(policy="two_genes")
    search(tmp_path, config).close()
    assert read_run_config(tmp_path) == config


@pytest.mark.parametrize(
    ("offspring", "workers", "expected"),
    [(None, 64, 100), (30, 64, 30), ("workers", 2, 100), ("workers", 16, 112)]
    + [("workers", 64, 128), ("workers", 128, 128), ("workers", 100, 100)],
)
def test_offspring_is_whole_waves_of_the_workers(offspring, workers, expected):
    config = make_config(pop_size=100, offspring=offspring)
    assert offspring_for(resolve_offspring(config, workers).search, 1) == expected


def test_each_generation_asks_for_the_offspring_count(tmp_path):
    config = resolve_offspring(make_config(offspring="workers"), workers=5)
    assert config.search.offspring == 20  # pop 16: four waves of five
    asked = {}

    def count(generation, genomes, F, counts):
        asked[generation] = sum(counts)

    s = search(tmp_path, config, count)
    s.run(generations=3)
    s.close()
    assert asked == {0: 16, 1: 20, 2: 20}
    assert read_run_config(tmp_path).search.offspring == 20  # a resume asks as many


@pytest.mark.parametrize("offspring", [0, -3, "all"])
def test_a_wrong_offspring_is_refused(offspring):
    with pytest.raises(UserError, match="offspring"):
        with_overrides(make_config(), {"search": {"offspring": offspring}}, "test")


def test_an_unset_offspring_keeps_the_digest_of_earlier_runs():
    config = make_config()
    assert config.digest() == "ba319206f30e6369"  # evoquant before the key existed
    assert make_config(offspring=16).digest() != config.digest()


SEEDED = {
    "seeding": {"enabled": True, "share": 0.75},
    "screening": {"enabled": True, "factor": 4, "exploration": 0.25},
}


def archived_genomes(run_dir):
    archive = Archive(run_dir / "archive.sqlite")
    try:
        return sorted((r["genome"], r["generation"]) for r in archive.records())
    finally:
        archive.close()


@pytest.mark.slow
@pytest.mark.parametrize("crash_generation", [0, 3])
def test_seeded_and_screened_search_resumes_exactly(tmp_path, crash_generation):
    """Interrupted inside generation g (after some of its results were archived),
    resumed: the same populations and the same archive as an uninterrupted run."""
    config = make_config(**SEEDED)
    expected = straight_run(tmp_path / "straight", config)
    run_dir = tmp_path / "crashed"
    _, recorder, _ = crash_inside(run_dir, config, crash_generation)
    resumed = search(run_dir, config, recorder, resume=True)
    resumed.run()
    resumed.close()
    assert recorder.generations == expected
    assert archived_genomes(run_dir) == archived_genomes(tmp_path / "straight")


@pytest.mark.slow
def test_seeding_reuses_probes_already_in_the_archive(tmp_path):
    """Probes measured first (as ``evoquant sensitivity`` does) are not evaluated again
    by a second measurement or by the seeded search that follows."""
    config = make_config(**SEEDED)
    space = SearchSpace.from_config(LAYERS, config)
    first = SyntheticEvaluator(space)
    s = search(tmp_path, config, evaluator=first)
    model = s.measure_sensitivity()
    s.close()
    probes = {tuple(space.to_bits(row)) for row in probe_levels(space, 8)}
    assert {tuple(g) for g in first.evaluated} == probes
    again = SyntheticEvaluator(space)
    s = search(tmp_path, config, evaluator=again, resume=True)
    again_model = s.measure_sensitivity()
    assert np.array_equal(again_model.error_increase, model.error_increase)
    s.run(generations=2)
    s.close()
    assert again.evaluated and not probes & {tuple(g) for g in again.evaluated}


@pytest.mark.slow
def test_seeded_generation_zero_holds_the_uniform_genomes_and_the_additive_front(
    tmp_path,
):
    config = make_config(**SEEDED)
    space = SearchSpace.from_config(LAYERS, config)
    s = search(tmp_path, config)
    s.run(generations=1)
    s.close()
    archive = Archive(tmp_path / "archive.sqlite")
    zero = archive.populations()[0]
    archive.close()
    model = s.sensitivity
    front = {tuple(space.to_bits(r)) for r in additive_front(model)}
    uniform = {tuple(space.to_bits(u)) for u in space.uniform_genomes()}
    # a share of 0.75 of 16: the uniform genomes and 8 spread along the front
    assert uniform <= {tuple(g) for g in zero}
    assert len({tuple(g) for g in zero} & (front | uniform)) >= 12


class Counts:
    """An ``on_generation`` hook keeping each generation's (evaluated, from the archive)."""

    def __init__(self):
        self.generations = {}

    def __call__(self, gen, genomes, F, counts):
        self.generations[gen] = counts


@pytest.mark.slow
def test_a_resumed_seeded_search_counts_its_generations_as_an_uninterrupted_one(
    tmp_path,
):
    """The probes are no generation's genomes: read back from the archive on resume,
    they are neither evaluations nor archive hits of the generation that follows."""
    config = make_config(**SEEDED)
    straight = Counts()
    s = search(tmp_path / "straight", config, straight)
    s.run()
    s.close()
    split = Counts()
    s = search(tmp_path / "split", config, split)
    s.run(generations=3)
    s.close()
    s = search(tmp_path / "split", config, split, resume=True)
    s.run()
    s.close()
    assert split.generations == straight.generations
    assert sum(straight.generations[0]) == 16  # pop_size asked; the probes apart
    assert all(sum(counts) == 16 for counts in straight.generations.values())
    probes = len(probe_levels(SearchSpace.from_config(LAYERS, config), 8))
    for run in ("straight", "split"):  # asked for once, read back on the resume
        last = checkpoint_paths(tmp_path / run / "checkpoints")[-1]
        assert read_checkpoint(last).probes == probes
