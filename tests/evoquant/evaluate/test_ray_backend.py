"""The Ray back-end on a real, private Ray instance: the local results exactly, no genome lost.

Ray takes about ten seconds to start and each worker a few more to import torch and
build the problem, so the module shares one Ray session and its searches are small
(digits, 10 genomes x 3 generations, a short alpha grid). Every Ray run is compared
with one local run of the same settings.
"""

import logging
import os
import shutil
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import yaml

from evoquant.archive import Archive
from evoquant.checkpoint import checkpoint_paths, read_checkpoint
from evoquant.cli import main
from evoquant.config import EvaluatorConfig
from evoquant.errors import UserError
from evoquant.evaluate.ray_backend import placement
from evoquant.evaluate.ray_session import ray_session

# a private Ray instance and Ray searches (about a minute)
pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SMALL_ARGS = {"batch_size": 64, "calibration_batches": 2, "fitness_batches": 2}
FAULTY = "faulty:faulty_digits"


@pytest.fixture(scope="module")
def ray_logs(tmp_path_factory):
    """One private Ray instance for the module, started as ``evoquant search`` starts one.

    Workers inherit the instance's environment, so PYTHONPATH set here lets them import
    the ``faulty`` problem module. Yields the folder with Ray's logs.
    """
    run_dir = tmp_path_factory.mktemp("ray-session")
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", path)
        patch.syspath_prepend(str(HERE))
        with ray_session(None, run_dir):
            yield run_dir / "ray"


@pytest.mark.parametrize(
    ("options", "resources", "on_cuda", "expected"),
    [
        ({}, {"CPU": 16.0}, False, (16, 0.0)),
        ({"threads_per_worker": 4}, {"CPU": 18.0}, False, (4, 0.0)),
        ({}, {"CPU": 64.0, "GPU": 8.0}, True, (8, 1.0)),
        ({"gpus_per_worker": 0.5}, {"CPU": 64.0, "GPU": 2.0}, True, (4, 0.5)),
        (
            {"workers": 10, "gpus_per_worker": 0.1},
            {"CPU": 10.0, "GPU": 1.0},
            True,
            (10, 0.1),
        ),
        ({"workers": 2}, {"CPU": 2.0}, False, (2, 0.0)),
    ],
)
def test_workers_default_to_the_whole_cluster(options, resources, on_cuda, expected):
    assert placement(EvaluatorConfig(**options), resources, on_cuda) == expected


@pytest.mark.parametrize(
    ("options", "resources", "on_cuda"),
    [
        ({"workers": 3}, {"CPU": 2.0}, False),
        ({}, {"CPU": 8.0}, True),
        ({"gpus_per_worker": 1.0, "workers": 3}, {"CPU": 8.0, "GPU": 2.0}, False),
    ],
)
def test_workers_that_do_not_fit_are_refused(options, resources, on_cuda):
    with pytest.raises(UserError, match="do not fit the Ray cluster"):
        placement(EvaluatorConfig(**options), resources, on_cuda)


def digits_config(problem: str = "digits", **args) -> dict:
    return {
        "problem": {"name": problem, "args": {**SMALL_ARGS, **args}},
        "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
        "search": {"pop_size": 10, "generations": 3},
    }


def search(root: Path, name: str, config: dict, *flags: str) -> int:
    """``evoquant search NAME.yaml --name NAME -q FLAGS`` in ``root``; the run is root/runs/NAME."""
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return main(["search", f"{name}.yaml", "--name", name, "-q", *flags])


def share_table(reference: Path, run_dir: Path) -> None:
    """Give a new run the reference run's quantization table (same model, same settings)."""
    run_dir.mkdir(parents=True)
    for path in reference.glob("quant_table.*"):
        shutil.copy(path, run_dir)


def archive_rows(run_dir: Path) -> dict:
    """genome -> (status, error, metrics, generation) of every archived evaluation."""
    archive = Archive(run_dir / "archive.sqlite")
    try:
        return {
            tuple(r["genome"]): (r["status"], r["error"], r["metrics"], r["generation"])
            for r in archive.records()
        }
    finally:
        archive.close()


def results(run_dir: Path) -> tuple:
    """What a run produced: its archive, its front and its last population."""
    last = read_checkpoint(checkpoint_paths(run_dir / "checkpoints")[-1])
    front = (run_dir / "front.json").read_text()
    return archive_rows(run_dir), front, last.generation, last.genomes, last.objectives


def rows_of_generation(archive: Path, generation: int) -> int:
    if not archive.exists():
        return 0
    db = sqlite3.connect(archive)
    try:
        query = "SELECT COUNT(*) FROM evaluations WHERE generation = ?"
        return db.execute(query, (generation,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


class When:
    """Run ``action`` on a thread as soon as ``condition()`` holds, while a run goes on.

    ``with When(condition, action):`` wraps the run. Leaving the block tells the watcher
    that the run is over (if the condition never held, it gives up without acting) and
    waits for it: the watcher stops when the run does, not after some number of seconds.
    """

    POLL = 0.005
    """Seconds between looks at ``condition`` while the run goes on."""

    def __init__(self, condition, action) -> None:
        self.condition, self.action = condition, action
        self.run_over = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        while not self.condition():
            if self.run_over.wait(self.POLL):
                return
        self.action()

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *exc) -> None:
        self.run_over.set()
        self.thread.join()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The reference: the same search with ``--backend local``."""
    root = tmp_path_factory.mktemp("local")
    assert search(root, "local", digits_config(), "--backend", "local") == 0
    return root / "runs" / "local"


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {pid}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def listening_addresses(pids: set[int]) -> set[str]:
    """The local addresses (as /proc/net hex) on which these processes accept TCP."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(fields[1].rsplit(":", 1)[0])
    return addresses


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}
"""127.0.0.1 and ::ffff:127.0.0.1 as /proc/net writes them."""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_private_instance_listens_on_localhost_only(ray_logs):
    addresses = listening_addresses(descendants(os.getpid()))
    assert addresses and addresses <= LOOPBACK
    assert list(ray_logs.glob("session_*/logs/raylet.out"))


def test_two_ray_workers_give_exactly_the_local_results(ray_logs, tmp_path, local_run):
    share_table(local_run, tmp_path / "runs" / "ray")
    config = digits_config()
    assert search(tmp_path, "ray", config, "--backend", "ray", "--workers", "2") == 0
    assert results(tmp_path / "runs" / "ray") == results(local_run)


def test_a_worker_killed_mid_generation_loses_no_genome(
    ray_logs, tmp_path, local_run, caplog
):
    pids, run_dir = tmp_path / "pids", tmp_path / "runs" / "killed"
    pids.mkdir()
    share_table(local_run, run_dir)
    config = digits_config(FAULTY, delay=0.1, pid_dir=str(pids))
    killed = []

    def kill_a_worker() -> None:
        killed.append(min(int(p.name) for p in pids.iterdir()))
        os.kill(killed[0], signal.SIGKILL)

    killer = When(
        lambda: rows_of_generation(run_dir / "archive.sqlite", 1) >= 2, kill_a_worker
    )
    with caplog.at_level(logging.WARNING, logger="evoquant"), killer:
        assert search(tmp_path, "killed", config, "--workers", "2") == 0

    assert killed, "the run ended before generation 1"
    assert f"(pid {killed[0]}) lost" in caplog.text
    assert results(run_dir) == results(local_run)


@pytest.fixture(scope="module")
def failing_local_run(tmp_path_factory, local_run) -> Path:
    """The reference for runs where every genome with the head at 2 bits raises."""
    root = tmp_path_factory.mktemp("failing")
    share_table(local_run, root / "runs" / "failing")
    config = digits_config(FAULTY, fail_fc_2bit=True)
    assert search(root, "failing", config, "--backend", "local") == 0
    return root / "runs" / "failing"


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def broken_run(ray_logs, tmp_path_factory, local_run) -> dict:
    """One Ray worker; genomes with the head at 2 bits raise; once generation 0 is
    checkpointed the worker leaves for good. Then the run is resumed locally."""
    root = tmp_path_factory.mktemp("broken")
    broken, run_dir = root / "broken", root / "runs" / "lost"
    share_table(local_run, run_dir)
    config = digits_config(
        FAULTY, fail_fc_2bit=True, delay=0.05, crash_flag=str(broken)
    )
    breaker = When(
        lambda: (run_dir / "checkpoints" / "gen_0000.json").exists(), broken.touch
    )
    collect = Collect()
    logging.getLogger("evoquant").addHandler(collect)
    with pytest.MonkeyPatch.context() as patch:
        err = root / "stderr"
        with err.open("w") as stream, breaker:
            patch.setattr(sys, "stderr", stream)
            code = search(root, "lost", config, "--workers", "1")
    logging.getLogger("evoquant").removeHandler(collect)
    stopped_at = read_checkpoint(checkpoint_paths(run_dir / "checkpoints")[-1])
    broken.unlink()
    assert main(["resume", str(run_dir), "--backend", "local", "-q"]) == 0
    return {
        "code": code,
        "stderr": err.read_text(),
        "warnings": collect.messages,
        "stopped_at": stopped_at.generation,
        "run_dir": run_dir,
    }


def test_a_genome_that_raises_is_retried_then_recorded_as_failed(broken_run):
    rows = archive_rows(broken_run["run_dir"])
    failed = {genome: row for genome, row in rows.items() if row[0] == "failed"}
    all_2 = (2,) * len(next(iter(rows)))
    assert all_2 in failed and len(failed) < len(rows)
    assert all(genome[-1] == 2 for genome in failed)
    assert {row[1] for row in failed.values()} == {
        "FloatingPointError: the head at 2 bits diverges"
    }
    ray_failures = [genome for genome, row in failed.items() if row[3] == 0]
    for genome in ray_failures:  # generation 0 ran on Ray
        prefix = f"genome {list(genome)}: attempt "
        attempts = [m for m in broken_run["warnings"] if m.startswith(prefix)]
        assert [m[len(prefix) :].split(" failed")[0] for m in attempts] == [
            "1 of 3",
            "2 of 3",
            "3 of 3",
        ]


def test_with_every_worker_gone_the_run_stops_and_resumes(
    broken_run, failing_local_run
):
    assert broken_run["code"] == 2
    stderr = broken_run["stderr"]
    errors = [line for line in stderr.splitlines() if line.startswith("evoquant:")]
    assert errors == [stderr.strip().splitlines()[-1]] and "Traceback" not in stderr
    assert errors[0].startswith("evoquant: error: every Ray worker is gone")
    assert "'evoquant resume runs/lost' continues the run" in errors[0]
    assert broken_run["stopped_at"] == 0
    assert results(broken_run["run_dir"]) == results(failing_local_run)


def test_a_config_no_worker_can_build_stops_before_the_run_starts(
    ray_logs, tmp_path, local_run, capsys
):
    run_dir = tmp_path / "runs" / "bad"
    share_table(local_run, run_dir)
    config = digits_config() | {"error": "no_such_metric"}
    assert search(tmp_path, "bad", config, "--workers", "1") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "evoquant: error: error metric 'no_such_metric' is not one of ['f_cos']"
    ]
    assert not (run_dir / "run.json").exists()
