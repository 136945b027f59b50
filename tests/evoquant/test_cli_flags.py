"""The evaluation flags of ``search`` and ``resume``: into the config, or one error line."""

import socket

import pytest
import yaml

from evoquant.cli import main
from evoquant.config import parse_config
from evoquant.rundir import RunDir

pytestmark = pytest.mark.usefixtures("restore_logging")

CONFIG = {"problem": {"name": "digits"}, "search": {"pop_size": 4, "generations": 1}}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


BAD_FLAGS = [
    (["--workers", "0"], "evaluator.workers: Value error, workers must be at least 1"),
    (["--gpus-per-worker", "-0.5"], "gpus_per_worker must be 0 or more"),
    (["--ray-address", "nowhere"], "Ray address 'nowhere' must be 'auto' or HOST:PORT"),
    (["--ray-address", f"127.0.0.1:{closed_port()}"], "cannot reach a Ray cluster"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_bad_evaluation_flags_on_search(capsys, tmp_path, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    line = one_error_line(capsys, ["search", "c.yaml", *flags])
    assert line.startswith("evoquant: error: ") and message in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_bad_evaluation_flags_on_resume(capsys, tmp_path, flags, message):
    RunDir(tmp_path).create(parse_config(CONFIG), ["fc"], [[8]])
    line = one_error_line(capsys, ["resume", str(tmp_path), *flags])
    assert message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
