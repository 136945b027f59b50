"""Run directories through the command line: what is refused, what is redrawn, what is kept.

One small digits search (local back-end, 4 x 2) is made once; each test damages a copy
of it the way a user, a crash or a full disk would, and checks that evoquant answers
with one line and exit status 2 and leaves every file as it was, or repairs what is
only a report.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from evoquant.archive import Archive
from evoquant.checkpoint import checkpoint_paths, read_checkpoint, write_checkpoint
from evoquant.rundir import RunDir

CONFIG = {
    "problem": {
        "name": "digits",
        "args": {"batch_size": 32, "calibration_batches": 1, "fitness_batches": 1},
    },
    "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
    "search": {"pop_size": 4, "generations": 2},
    "evaluator": {"backend": "local"},
}
ERROR = "evoquant: error: "


def write_config(path: Path, config: dict = CONFIG) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def sqlite_side_file(path: Path) -> bool:
    """SQLite's shared-memory index, or a write-ahead log holding nothing."""
    return path.name.endswith("-shm") or (
        path.name.endswith("-wal") and not path.stat().st_size
    )


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory``, SQLite's empty side files aside."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not sqlite_side_file(p)
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cli) -> Path:
    """A finished two-generation run, never modified: tests work on copies."""
    root = tmp_path_factory.mktemp("finished")
    config = write_config(root / "small.yaml")
    assert cli("search", str(config), "--run-dir", str(root / "run"), "-q") == 0
    return root / "run"


@pytest.fixture
def run(finished, tmp_path, monkeypatch) -> Path:
    """A copy of the finished run in ``tmp_path/run``, with the config beside it."""
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / "small.yaml")
    return Path(shutil.copytree(finished, tmp_path / "run"))


def refused(cli, capsys, *argv: str, match: str) -> str:
    """Run the CLI in-process; it must exit 2 with one line on stderr containing ``match``
    (or one of its ``|``-separated alternatives), besides calibration's progress."""
    assert cli(*argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    err = "\n".join(line for line in lines if not line.startswith("calibration: "))
    assert err.startswith(ERROR) and "\n" not in err, err
    assert any(option in err for option in match.split("|")), err
    return err


def flip_bytes(path: Path, offset: int = -64, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + count or None] = bytes(
        255 - b for b in data[offset:][:count]
    )
    path.write_bytes(bytes(data))


def foreign_checkpoint(run: Path) -> None:
    """A valid checkpoint of another run copied in as the newest one."""
    mine = read_checkpoint(checkpoint_paths(run / "checkpoints")[-1])
    other = dataclasses.replace(mine, generation=99, run_id="0" * 32)
    with tempfile.TemporaryDirectory() as elsewhere:
        shutil.copy(write_checkpoint(Path(elsewhere), other), run / "checkpoints")


def foreign_archive(run: Path) -> None:
    """The archive of another run in place of this one's."""
    (run / "archive.sqlite").unlink()
    archive = Archive(run / "archive.sqlite", owner=("0" * 32, "abc"))
    archive.put([8] * 10, {"f_bits": 1.0, "error": 0.5}, 0)
    archive.close()


def config_with(section: str, **settings) -> dict:
    config = json.loads(json.dumps(CONFIG))
    config[section] |= settings
    return config


def changed_quant_config(run: Path) -> None:
    write_config(run.parent / "changed.yaml", config_with("quant", scheme="tensorrt"))


def legacy_run_file(run: Path) -> None:
    meta = json.loads((run / "run.json").read_text())
    for key in ("run_id", "config_digests", "scoring_digest", "uniform_genomes"):
        del meta[key]
    meta["evoquant_version"] = "0.1.0"
    (run / "run.json").write_text(json.dumps(meta))


Damage = Callable[[Path], None]

REFUSALS: list[tuple[str, Damage, list[str], str]] = [
    (
        "leftover-archive-and-checkpoints",
        lambda run: (run / "run.json").unlink(),
        ["search", "small.yaml", "--run-dir", "run"],
        "holds archive.sqlite and checkpoints/ of a run whose run.json is gone",
    ),
    (
        "table-bytes",
        lambda run: flip_bytes(run / "quant_table.safetensors"),
        ["resume", "run"],
        "quant_table.safetensors fails its checksum",
    ),
    (
        "table-truncated",
        lambda run: (run / "quant_table.safetensors").write_bytes(b"\x08"),
        ["resume", "run"],
        "fails its checksum",
    ),
    (
        "table-zeroed",
        lambda run: (run / "quant_table.safetensors").write_bytes(
            bytes((run / "quant_table.safetensors").stat().st_size)
        ),
        ["resume", "run"],
        "fails its checksum",
    ),
    (
        "table-bad-header",
        lambda run: flip_bytes(run / "quant_table.safetensors", offset=8),
        ["export", "run", "--out", "out"],
        "fails its checksum",
    ),
    (
        "table-json",
        lambda run: (run / "quant_table.json").write_text("{"),
        ["export", "run", "--out", "out"],
        "quantization table in run is unreadable",
    ),
    (
        "forced-resume-changes-scores",
        changed_quant_config,
        ["resume", "run", "--config", "changed.yaml", "--force"],
        "changes how genomes are scored (quant)",
    ),
    (
        "forced-resume-changes-the-genome",
        lambda run: write_config(
            run.parent / "changed.yaml", config_with("search", policy="two_genes")
        ),
        ["resume", "run", "--config", "changed.yaml", "--force"],
        "changes search.policy",
    ),
    (
        "foreign-checkpoint",
        foreign_checkpoint,
        ["resume", "run"],
        "gen_0099.json belongs to another run",
    ),
    (
        "foreign-checkpoint-status",
        foreign_checkpoint,
        ["status", "run"],
        "gen_0099.json belongs to another run",
    ),
    (
        "archive-deleted",
        lambda run: (run / "archive.sqlite").unlink(),
        ["resume", "run"],
        "missing or empty while checkpoints/ holds generation 1",
    ),
    (
        "archive-zero-length",
        lambda run: (run / "archive.sqlite").write_bytes(b""),
        ["resume", "run"],
        "missing or empty",
    ),
    (
        "archive-foreign",
        foreign_archive,
        ["resume", "run"],
        "belongs to another run",
    ),
    (
        "archive-page",
        lambda run: flip_bytes(run / "archive.sqlite", offset=4096 * 3, count=64),
        ["plot", "run"],
        "archive run/archive.sqlite",
    ),
    (
        "archive-page-status",
        lambda run: flip_bytes(run / "archive.sqlite", offset=4096 * 3, count=64),
        ["status", "run"],
        "archive run/archive.sqlite",
    ),
    (
        "archive-page-resume",
        lambda run: flip_bytes(run / "archive.sqlite", offset=4096 * 3, count=64),
        ["resume", "run"],
        "archive run/archive.sqlite",
    ),
    (
        "run-file-truncated",
        lambda run: (run / "run.json").write_text('{"run_id": '),
        ["plot", "run"],
        "run/run.json is corrupt",
    ),
    (
        "run-file-from-before-binding",
        legacy_run_file,
        ["resume", "run"],
        "written by evoquant 0.1.0, whose run files are not bound",
    ),
]


@pytest.mark.parametrize(
    "damage, argv, match",
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_damaged_or_foreign_state_is_refused_and_left_alone(
    run, cli, capsys, damage, argv, match
):
    damage(run)
    before = snapshot(run.parent)
    refused(cli, capsys, *argv, match=match)
    assert snapshot(run.parent) == before


def test_archive_rows_that_are_not_json_are_refused(run, cli, capsys):
    archive = Archive(run / "archive.sqlite")
    archive._db.execute("UPDATE evaluations SET metrics = '{not json' WHERE rowid = 2")
    archive._db.commit()
    archive.close()
    refused(cli, capsys, "status", "run", match="archive run/archive.sqlite is damaged")


def test_a_forced_resume_may_change_the_search_but_keeps_its_history(run, cli):
    write_config(run.parent / "wider.yaml", config_with("search", pop_size=6))
    assert cli("resume", "run", "--config", "wider.yaml", "--force", "-q") == 0
    record = RunDir(run).read()
    assert len(record.config_digests) == 2
    assert record.config.search.pop_size == 6
    assert cli("resume", "run", "--generations", "4", "-q") == 0


def test_missing_and_damaged_reports_are_redrawn_on_resume(run, cli):
    """A kill between a checkpoint and its reports leaves reports behind the state."""
    (run / "plots" / "gen_0001.png").unlink()
    (run / "plots" / "gen_0000.png").write_bytes(b"half a png")
    (run / "summary.md").unlink()
    (run / "front.json").unlink()
    (run / "hypervolume.json").write_text("{garbage")
    assert cli("resume", "run", "--generations", "3", "-q") == 0
    for generation in range(3):
        png = (run / "plots" / f"gen_{generation:04d}.png").read_bytes()
        assert png.startswith(b"\x89PNG"), generation
    assert set(json.loads((run / "hypervolume.json").read_text())) == {"0", "1", "2"}
    assert "- **generation**: 2\n" in (run / "summary.md").read_text()
    assert json.loads((run / "front.json").read_text())


def test_a_damaged_hypervolume_file_changes_nothing_for_status_and_plot(
    run, cli, capsys
):
    assert cli("status", "run") == 0
    healthy = capsys.readouterr().out
    (run / "hypervolume.json").write_text("{garbage")
    assert cli("status", "run") == 0
    assert capsys.readouterr().out == healthy
    assert cli("plot", "run") == 0
    assert json.loads((run / "hypervolume.json").read_text())


def test_a_folder_left_before_the_run_file_says_to_search_again(run, cli, capsys):
    for name in ("run.json", "archive.sqlite", "checkpoints"):
        path = run / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    refused(cli, capsys, "resume", "run", match="run 'evoquant search' again")
    assert cli("search", "small.yaml", "--run-dir", "run", "-q") == 0


@pytest.mark.parametrize(
    "name",
    ["../README.md", "../x", "/tmp/absolute", ".cache", "a" * 300, "two words"],
    ids=["parent-file", "parent", "absolute", "hidden", "300-chars", "space"],
)
def test_run_names_are_plain_folder_names(tmp_path, cli, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / "small.yaml")
    refused(
        cli, capsys, "search", "small.yaml", "--name", name, match="not a plain folder"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["quantize", "small.yaml", "--run-dir", "README.md"], "README.md is a file"),
        (["export", "run", "--out", "README.md"], "README.md is a file, not a folder"),
        (["export", "run", "--out", "/proc/x"], "cannot create export folder /proc/x"),
        (["search", "small.yaml", "--run-dir", "x" * 300], "File name too long"),
    ],
    ids=["quantize-into-file", "export-into-file", "export-into-proc", "long-path"],
)
def test_paths_the_system_refuses(run, cli, capsys, argv, match):
    (run.parent / "README.md").write_text("keep me")
    before = snapshot(run.parent)
    refused(cli, capsys, *argv, match=match)
    assert snapshot(run.parent) == before


def one_line_refusal(done: subprocess.CompletedProcess, match: str) -> None:
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert line.startswith(ERROR) and "\n" not in line, line
    assert match in line, line


def make_read_only(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        item.chmod(0o555 if item.is_dir() else 0o444)


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, match",
    [
        (["plot", "run"], "run is read-only: plot needs to write there"),
        (["resume", "run"], "run is read-only: resume needs to write there"),
        (["export", "run"], "cannot create export folder run/export"),
    ],
    ids=["plot", "resume", "export"],
)
def test_a_read_only_run_dir_is_refused_in_one_line(run, evoquant_process, argv, match):
    make_read_only(run)
    before = snapshot(run)
    done = evoquant_process(argv, run.parent, honour_permissions=True)
    one_line_refusal(done, match)
    assert snapshot(run) == before


@pytest.mark.slow
def test_status_reads_a_healthy_read_only_run(run, evoquant_process):
    for name in ("archive.sqlite-wal", "archive.sqlite-shm"):
        (run / name).unlink(missing_ok=True)
    make_read_only(run)
    done = evoquant_process(["status", "run"], run.parent, honour_permissions=True)
    assert done.returncode == 0, done.stderr
    assert "generation 2 of 2" in done.stdout


@pytest.mark.slow
def test_a_read_only_working_directory_is_refused_in_one_line(
    tmp_path, evoquant_process
):
    write_config(tmp_path / "small.yaml")
    make_read_only(tmp_path)
    done = evoquant_process(["search", "small.yaml"], tmp_path, honour_permissions=True)
    one_line_refusal(done, "Permission denied")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]


def test_ctrl_c_while_the_libraries_load_is_one_line(
    tmp_path, cli, monkeypatch, capsys
):
    class InterruptImport:
        """Ctrl-C arriving while ``evoquant.driver`` (and so torch) is imported."""

        def find_spec(self, name, path=None, target=None):
            if name == "evoquant.driver":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "evoquant.driver", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptImport(), *sys.meta_path])
    write_config(tmp_path / "small.yaml")
    monkeypatch.chdir(tmp_path)
    assert cli("search", "small.yaml") == 130
    assert capsys.readouterr().err == "evoquant: interrupted\n"


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB filesystem of its own, for filling up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; returns it."""
    filler = disk / "filler"
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(handle, bytes(4096))
    except OSError:
        return filler
    finally:
        os.close(handle)


def test_a_full_disk_ends_a_search_in_one_line(small_disk, cli, capsys, monkeypatch):
    monkeypatch.chdir(small_disk)
    write_config(small_disk / "small.yaml")
    fill(small_disk)
    refused(cli, capsys, "search", "small.yaml", match="No space left on device")
    assert not list(small_disk.rglob("*.tmp"))


@pytest.mark.slow
def test_a_disk_that_fills_during_a_resume_damages_nothing(
    finished, small_disk, tmp_path, cli, capsys, monkeypatch
):
    undisturbed = Path(shutil.copytree(finished, tmp_path / "undisturbed"))
    assert cli("resume", str(undisturbed), "--generations", "3", "-q") == 0
    capsys.readouterr()
    run = Path(shutil.copytree(finished, small_disk / "run"))
    filler = fill(small_disk)
    before = snapshot(run)
    assert call_status(cli, capsys, run) == call_status(cli, capsys, finished)
    refused(
        cli,
        capsys,
        "resume",
        str(run),
        "--generations",
        "3",
        "-q",
        match="cannot use archive|No space left on device",
    )
    after = snapshot(run)
    assert after.pop("run.log").startswith(before.pop("run.log"))  # a log only grows
    assert after == before
    assert not list(small_disk.rglob("*.tmp"))
    filler.unlink()
    assert cli("resume", str(run), "--generations", "3", "-q") == 0
    for name in ("front.json", "hypervolume.json"):
        assert (run / name).read_text() == (undisturbed / name).read_text()


def call_status(cli, capsys, run: Path) -> str:
    assert cli("status", str(run)) == 0
    return " ".join(capsys.readouterr().out.replace(str(run), "RUN").split())


@pytest.mark.parametrize(
    "argv, args, match",
    [
        (["--seed", "-1"], {}, "seed must be in [0, 2**32)"),
        (["--pop-size", "100000000000000000000"], {}, "pop_size"),
        ([], {"batch_size": "many"}, "argument batch_size: Input should be a valid"),
        ([], {"cache_dir": "/proc/cache"}, "unexpected keyword argument 'cache_dir'"),
    ],
    ids=["negative-seed", "huge-pop", "args-type", "args-unknown"],
)
def test_bad_flags_and_problem_args_write_nothing(
    tmp_path, cli, capsys, monkeypatch, argv, args, match
):
    monkeypatch.chdir(tmp_path)
    config = config_with("problem", args=CONFIG["problem"]["args"] | args)
    write_config(tmp_path / "small.yaml", config)
    refused(cli, capsys, "search", "small.yaml", *argv, match=match)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]


@pytest.mark.slow
def test_a_two_genes_search_reports_every_gene(tmp_path, cli, monkeypatch):
    """Two genes per layer (weights, activations): the reports name both."""
    monkeypatch.chdir(tmp_path)
    config = config_with("search", policy="two_genes")
    config["quant"]["bit_configs"] = [[w, a] for w in (2, 4, 8, 16) for a in (8, 16)]
    write_config(tmp_path / "two.yaml", config)
    assert cli("search", "two.yaml", "-q") == 0
    point = json.loads((tmp_path / "runs/two/front.json").read_text())["points"][0]
    assert list(point["bits"])[:2] == ["stem.0 (W)", "stem.0 (A)"]
    assert len(point["bits"]) == 20
    genes = list(point["bits"].values())
    assert list(point["configs"].values()) == [
        genes[i : i + 2] for i in range(0, 20, 2)
    ]
    assert next(iter(point["configs"])) == "stem.0"
    assert cli("resume", "runs/two", "--generations", "3", "-q") == 0
