"""SIGTERM, what a preempted cluster job receives, stops a search as Ctrl-C does.

A real ``evoquant search`` process on Ray (``ray.init`` puts in a SIGTERM handler of
its own, which the run must not keep) is sent SIGTERM once its first checkpoint is on
disk; its evaluations are slowed inside the Ray workers (``faulty.py``), so the run is
still going then. It must end with status 143, one line on stderr naming the resume
command, and a valid checkpoint from which ``evoquant resume`` finishes the run exactly
as an uninterrupted run (the local back-end, same settings) does.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evoquant import cli
from evoquant.checkpoint import checkpoint_paths, read_checkpoint
from evoquant.cli import SIGTERM_STATUS

FAULTY_DIR = Path(__file__).resolve().parent / "evaluate"  # faulty.py, for the workers
CONFIG = {
    "problem": {
        "name": "faulty:faulty_digits",
        "args": {
            "batch_size": 64,
            "calibration_batches": 2,
            "fitness_batches": 2,
            "delay": 0.1,
        },
    },
    "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
    "search": {"pop_size": 10, "generations": 4},
}


def evoquant(*argv: str) -> list[str]:
    return [sys.executable, "-m", "evoquant.cli", *argv]


def finished(root: Path, *argv: str) -> None:
    """``evoquant ARGV`` in ``root``, which must succeed."""
    done = subprocess.run(
        evoquant(*argv), cwd=root, env=environment(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr


def environment() -> dict[str, str]:
    """The workers import ``faulty`` from the path they inherit."""
    path = os.pathsep.join(
        filter(None, [str(FAULTY_DIR), os.environ.get("PYTHONPATH")])
    )
    return os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sigterm")
    (root / "run.yaml").write_text(yaml.safe_dump(CONFIG))
    return root


@pytest.fixture(scope="module")
def uninterrupted(root) -> Path:
    finished(root, "search", "run.yaml", "--name", "whole", "-q", "--backend", "local")
    return root / "runs" / "whole"


@pytest.fixture(scope="module")
def terminated(root, uninterrupted) -> dict:
    """The Ray search, sent SIGTERM as soon as generation 0's checkpoint exists."""
    run_dir = root / "runs" / "stopped"
    run_dir.mkdir(parents=True)
    for path in uninterrupted.glob("quant_table.*"):  # same table, no calibration
        shutil.copy(path, run_dir)
    first = run_dir / "checkpoints" / "gen_0000.json"
    argv = evoquant("search", "run.yaml", "--name", "stopped", "-q", "--workers", "1")
    process = subprocess.Popen(
        argv, cwd=root, env=environment(), stderr=subprocess.PIPE, text=True
    )
    try:
        while not first.exists() and process.poll() is None:
            try:
                process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate()[1]
    finally:
        process.kill()
    return {"code": process.returncode, "stderr": stderr, "run_dir": run_dir}


@pytest.mark.slow  # two searches, one on Ray in a subprocess (about a minute)
def test_sigterm_ends_the_run_with_one_line_naming_the_resume_command(terminated):
    assert terminated["code"] == SIGTERM_STATUS == 143, terminated["stderr"]
    last = read_checkpoint(checkpoint_paths(terminated["run_dir"] / "checkpoints")[-1])
    assert last.generation < CONFIG["search"]["generations"] - 1  # stopped mid-run
    stderr = terminated["stderr"].strip().splitlines()
    assert "Traceback" not in terminated["stderr"]
    assert [line for line in stderr if line.startswith("evoquant:")] == [stderr[-1]]
    assert stderr[-1] == (
        "evoquant: terminated (SIGTERM); 'evoquant resume runs/stopped' continues "
        f"after generation {last.generation}"
    )


@pytest.mark.slow
def test_the_resumed_run_equals_the_uninterrupted_one(
    root, terminated, uninterrupted, outcome
):
    finished(root, "resume", "runs/stopped", "-q", "--workers", "1")
    assert outcome(terminated["run_dir"]) == outcome(uninterrupted)


@pytest.mark.parametrize("checkpoints", [[], ["gen_0000.json", "gen_0002.json"]])
def test_sigterm_in_a_command_is_status_143_and_one_line(
    tmp_path, monkeypatch, capsys, restore_logging, checkpoints
):
    for name in checkpoints:
        path = tmp_path / "runs" / "x" / "checkpoints" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")

    def search_until_preempted(args):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cli, "search", search_until_preempted)
    monkeypatch.chdir(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["search", "x.yaml"]) == 143
    hint = (
        "; 'evoquant resume runs/x' continues after generation 2" if checkpoints else ""
    )
    assert capsys.readouterr().err == f"evoquant: terminated (SIGTERM){hint}\n"
    assert signal.getsignal(signal.SIGTERM) is before  # put back after main
