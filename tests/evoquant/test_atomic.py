import os

import pytest

from evoquant.atomic import (
    FILE_MODE,
    write_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "old")

    def half_then_crash(tmp):
        tmp.write_text("ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(path, half_then_crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_files_get_the_umask_mode_whatever_the_writer_made(tmp_path):
    def private(tmp):
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)  # as safetensors and tempfile do

    path = write_atomic(tmp_path / "t.safetensors", private)
    assert path.stat().st_mode & 0o777 == FILE_MODE


def test_json_is_strict(tmp_path):
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "a.json", {"x": float("nan")})
    assert not list(tmp_path.iterdir())
    write_json_atomic(tmp_path / "a.json", {"b": 1, "a": 2})
    assert (tmp_path / "a.json").read_text() == '{\n "a": 2,\n "b": 1\n}\n'
