"""What the command-line tests share: ``evoquant`` run in-process or as a real process."""

import ctypes
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from evoquant.cli import main

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


@contextmanager
def restored_logging() -> Iterator[None]:
    """``main`` adds a console handler (bound to the captured stderr) to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)


def call_cli(*argv: str) -> int:
    """``main(argv)``, then drop the console handler it adds to the root logger."""
    with restored_logging():
        return main(list(argv))


@pytest.fixture
def restore_logging():
    """For tests that call ``evoquant.cli.main`` themselves."""
    with restored_logging():
        yield


@pytest.fixture(scope="session")
def cli():
    """``cli(*argv) -> exit status``: the command line, in this process."""
    return call_cli


def _without_permission_override() -> None:
    """Make file permissions bind root too, as they bind every other user.

    Root ignores permission bits through two capabilities; dropping them from the
    bounding set before ``exec`` leaves the new process without them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_evoquant(
    argv: list[str], cwd: Path, honour_permissions: bool = False
) -> subprocess.CompletedProcess:
    """The real ``python -m evoquant.cli``, as a user would meet it.

    ``honour_permissions`` runs it so that read-only files and folders are read-only
    even when the tests run as root (as CI does).
    """
    as_root = honour_permissions and os.geteuid() == 0
    return subprocess.run(
        [sys.executable, "-m", "evoquant.cli", *argv],
        cwd=cwd,
        preexec_fn=_without_permission_override if as_root else None,
        check=False,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="session")
def evoquant_process():
    """``evoquant_process(argv, cwd, honour_permissions=False)``: the command line, as a process."""
    return run_evoquant


def run_outcome(run_dir: Path) -> tuple:
    """What a run produced: archive rows (status, metrics, generation of each genome),
    front and last population. Two runs that must agree exactly compare these."""
    from evoquant.archive import Archive
    from evoquant.checkpoint import checkpoint_paths, read_checkpoint

    archive = Archive(run_dir / "archive.sqlite", read_only=True)
    try:
        rows = {
            tuple(r["genome"]): (r["status"], r["metrics"], r["generation"])
            for r in archive.records()
        }
    finally:
        archive.close()
    last = read_checkpoint(checkpoint_paths(run_dir / "checkpoints")[-1])
    front = (run_dir / "front.json").read_text()
    return rows, front, last.generation, last.genomes, last.objectives


@pytest.fixture(scope="session")
def outcome():
    """``outcome(run_dir)``: ``run_outcome``, for tests comparing whole runs."""
    return run_outcome
