import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from evoquant.errors import UserError
from evoquant.evaluate.ray_session import MAX_TEMP_DIR, check_address, temp_dir_for


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_nothing_answers_on_is_refused_at_once():
    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(UserError, match=f"cannot reach a Ray cluster at {address}"):
        check_address(address)
    with pytest.raises(UserError, match="cannot reach"):
        check_address(f"ray://{address}")


@pytest.mark.parametrize("address", ["localhost", "10.0.0.1:port", ":6379"])
def test_a_malformed_address_is_refused(address):
    with pytest.raises(UserError, match="must be 'auto' or HOST:PORT"):
        check_address(address)


def test_an_address_that_answers_passes():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_address(f"127.0.0.1:{server.getsockname()[1]}")


def fake_ray_session(temp: Path) -> None:
    """What Ray leaves in its temp dir: logs, a socket, a ``session_latest`` link."""
    session = temp / "session_1"
    (session / "logs").mkdir(parents=True)
    (session / "logs" / "raylet.out").write_text("started")
    (session / "sockets").mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(session / "sockets" / "plasma_store"))
    (temp / "session_latest").symlink_to(session)


def test_a_deep_run_dir_is_reached_through_a_short_symlink(tmp_path):
    run_dir = tmp_path / ("deep" * 20)
    with temp_dir_for(run_dir) as temp:
        assert len(str(temp)) <= MAX_TEMP_DIR
        assert temp.resolve() == (run_dir / "ray").resolve()
        fake_ray_session(temp)
    assert not temp.exists() and not temp.parent.exists()
    left = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    assert [str(p) for p in left] == [
        "ray",
        "ray/session_1",
        "ray/session_1/logs",
        "ray/session_1/logs/raylet.out",
    ]
    shutil.copytree(run_dir, tmp_path / "copy")


def test_a_shallow_run_dir_holds_the_ray_dir_itself():
    run_dir = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        with temp_dir_for(run_dir) as temp:
            assert temp == run_dir.resolve() / "ray" and temp.is_dir()
            fake_ray_session(temp)
        assert not (temp / "session_latest").exists()
        assert not (temp / "session_1" / "sockets").exists()
    finally:
        shutil.rmtree(run_dir)
