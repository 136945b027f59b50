"""The command line on bad input: one line on stderr, exit status 2, nothing on disk damaged.

Every case calls ``evoquant.cli.main`` in-process, except two that run the real
``python -m evoquant.cli`` to check that no traceback reaches the user. Digits runs on
its shipped weights.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from evoquant.cli import main

ERROR_PREFIX = "evoquant: error: "

pytestmark = pytest.mark.usefixtures("restore_logging")

SMALL_ARGS = {"batch_size": 64, "calibration_batches": 2, "fitness_batches": 2}
SMALL_ALPHA = {"start": 0.9, "stop": 1.1, "step": 0.1}


def small_digits_config(**sections) -> dict:
    """A digits config that calibrates in a second or two."""
    config = {
        "problem": {"name": "digits", "args": dict(SMALL_ARGS)},
        "quant": {"alpha": SMALL_ALPHA},
        "search": {"pop_size": 4, "generations": 2},
    }
    for key, value in sections.items():
        config[key] = (
            {**config.get(key, {}), **value} if isinstance(value, dict) else value
        )
    return config


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one thread is faster and immune to contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def changed_files(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    return sorted(
        name for name in {*before, *after} if before.get(name) != after.get(name)
    )


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def user_error(capsys, *argv: str, match: str) -> str:
    """Run the CLI, expect exit 2 and exactly one ``evoquant: error:`` line containing ``match``."""
    rc = main(list(argv))
    _, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(ERROR_PREFIX), err
    assert match in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def assert_no_run(root: Path) -> None:
    assert not list(root.rglob("run.json"))
    assert not list(root.rglob("archive.sqlite"))


def assert_one_line_in_subprocess(cwd: Path, argv: list[str], match: str) -> None:
    """``python -m evoquant.cli ARGV``: exit 2, one ``evoquant: error:`` line, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "evoquant.cli", *argv],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(ERROR_PREFIX) and match in lines[0], done.stderr
    assert done.stdout == ""


# --- config mistakes -------------------------------------------------------------------


def test_missing_config_file(capsys, in_tmp):
    user_error(capsys, "search", "nope.yaml", match="config file not found: nope.yaml")
    user_error(capsys, "quantize", "nope.yaml", match="config file not found")
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"quant": {"bogus": 1}}, "quant.bogus: unknown key"),
        ({"search": {"pop_size": "x"}}, "search.pop_size"),
    ],
    ids=["top-level-key", "nested-key", "wrong-type"],
)
@pytest.mark.parametrize("command", ["search", "quantize"])
def test_invalid_config(capsys, in_tmp, command, extra, where):
    config = write_config(in_tmp / "bad.yaml", small_digits_config() | extra)
    line = user_error(capsys, command, str(config), match=where)
    assert "bad.yaml" in line
    assert sorted(p.name for p in in_tmp.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize(
    ("option", "match"),
    [
        (["--pop-size", "1"], "pop_size must be at least 2"),
        (["--generations", "0"], "generations must be at least 1"),
    ],
)
def test_bad_search_overrides(capsys, in_tmp, option, match):
    config = write_config(in_tmp / "digits.yaml", small_digits_config())
    user_error(capsys, "search", str(config), *option, match=match)
    assert not (in_tmp / "runs").exists()


# --- problem and model mistakes ---------------------------------------------------------


def test_unknown_problem(capsys, in_tmp):
    config = write_config(in_tmp / "c.yaml", {"problem": {"name": "no_such_problem"}})
    user_error(capsys, "search", str(config), match="unknown problem 'no_such_problem'")
    user_error(capsys, "quantize", str(config), match="unknown problem")
    assert_no_run(in_tmp)


TORCHVISION_ARGS = {
    "model": "resnet18",
    "weights": "/nonexistent.pt",
    "image_size": 32,
    "batch_size": 2,
    "calibration_batches": 1,
    "fitness_batches": 1,
}


def test_missing_weights_file(capsys, in_tmp):
    config = {"problem": {"name": "torchvision", "args": TORCHVISION_ARGS}}
    path = write_config(in_tmp / "tv.yaml", config)
    user_error(
        capsys, "quantize", str(path), match="weights file not found: /nonexistent.pt"
    )
    user_error(capsys, "search", str(path), match="weights file not found")
    assert_no_run(in_tmp)


def test_missing_digits_weights_file(capsys, in_tmp):
    args = {**SMALL_ARGS, "weights": "/nonexistent.safetensors"}
    path = write_config(
        in_tmp / "d.yaml", {"problem": {"name": "digits", "args": args}}
    )
    match = "digits weights not found: /nonexistent.safetensors"
    user_error(capsys, "quantize", str(path), match=match)
    user_error(capsys, "search", str(path), match=match)
    assert_no_run(in_tmp)


def test_unknown_torchvision_model(capsys, in_tmp):
    args = {**TORCHVISION_ARGS, "model": "resnet_nonexistent", "weights": None}
    path = write_config(
        in_tmp / "tv.yaml", {"problem": {"name": "torchvision", "args": args}}
    )
    user_error(
        capsys,
        "search",
        str(path),
        match="'resnet_nonexistent' is not a torchvision classification model",
    )
    assert_no_run(in_tmp)


def test_layer_pattern_matching_nothing(capsys, in_tmp):
    config = small_digits_config(layers={"exclude": ["nope*"]})
    path = write_config(in_tmp / "digits.yaml", config)
    user_error(capsys, "search", str(path), match="layer pattern 'nope*' matches no")
    user_error(capsys, "quantize", str(path), match="layer pattern 'nope*' matches no")
    assert_no_run(in_tmp)
    assert not list(in_tmp.rglob("quant_table*"))


# --- run directory mistakes -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cli) -> Path:
    """A finished 2-generation digits run of 4 genomes, made with ``evoquant search``."""
    root = tmp_path_factory.mktemp("tiny")
    config = write_config(root / "tiny.yaml", small_digits_config())
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert cli("search", str(config), "-q") == 0
    run_dir = root / "runs" / "tiny"
    assert (run_dir / "run.json").is_file()
    return run_dir


def test_resume_of_a_non_run_directory(capsys, tmp_path):
    directory = tmp_path / "not_a_run"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me\n")
    before = snapshot(directory)
    user_error(
        capsys, "resume", str(directory), match="is not an evoquant run directory"
    )
    user_error(
        capsys, "resume", str(tmp_path / "missing"), match="missing does not exist"
    )
    assert snapshot(directory) == before
    assert not (tmp_path / "missing").exists()


def test_resume_with_a_changed_config_needs_force(capsys, tiny_run, tmp_path):
    run_config = json.loads((tiny_run / "run.json").read_text())["config"]
    other = write_config(tmp_path / "other.yaml", run_config | {"seed": 1})
    before = snapshot(tiny_run)
    line = user_error(
        capsys,
        "resume",
        str(tiny_run),
        "--config",
        str(other),
        match="was run with another config",
    )
    assert "force" in line
    after = snapshot(tiny_run)
    assert after["run.json"] == before["run.json"]
    assert changed_files(before, after) in ([], ["run.log"])  # run.log may gain lines


def test_refused_resume_leaves_the_quant_table_alone(capsys, tiny_run, tmp_path):
    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    run_config = json.loads((run_dir / "run.json").read_text())["config"]
    run_config["quant"]["alpha"] = {**run_config["quant"]["alpha"], "stop": 1.2}
    other = write_config(tmp_path / "other.yaml", run_config)
    before = snapshot(run_dir)
    user_error(
        capsys, "resume", str(run_dir), "--config", str(other), match="another config"
    )
    assert changed_files(before, snapshot(run_dir)) in ([], ["run.log"])


@pytest.mark.slow
def test_subprocess_refused_resume_is_one_line(tiny_run, tmp_path):
    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    run_config = json.loads((run_dir / "run.json").read_text())["config"]
    other = write_config(tmp_path / "other.yaml", run_config | {"seed": 1})
    before = snapshot(run_dir)
    argv = ["resume", str(run_dir), "--config", str(other)]
    assert_one_line_in_subprocess(tmp_path, argv, "was run with another config")
    assert snapshot(run_dir)["run.json"] == before["run.json"]


def test_search_into_an_existing_run_is_refused(capsys, tiny_run, monkeypatch):
    monkeypatch.chdir(tiny_run.parent.parent)
    before = snapshot(tiny_run)
    user_error(capsys, "search", "tiny.yaml", match="already holds a run")
    user_error(
        capsys, "search", "tiny.yaml", "--name", "tiny", match="already holds a run"
    )
    assert snapshot(tiny_run) == before


def test_plot_of_a_non_run_directory(capsys, tmp_path):
    (tmp_path / "stuff.txt").write_text("x")
    user_error(capsys, "plot", str(tmp_path), match="is not an evoquant run directory")
    user_error(
        capsys, "status", str(tmp_path), match="is not an evoquant run directory"
    )
    assert snapshot(tmp_path) == {"stuff.txt": b"x"}


# --- the real process -------------------------------------------------------------------


def test_subprocess_bad_override_is_one_line(tmp_path):
    write_config(tmp_path / "digits.yaml", {"problem": {"name": "digits"}})
    argv = ["search", "digits.yaml", "--pop-size", "1"]
    assert_one_line_in_subprocess(tmp_path, argv, "pop_size must be at least 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.yaml"]


# --- quantize on digits -----------------------------------------------------------------


def test_quantize_digits_uniform_table(capsys, in_tmp):
    path = write_config(in_tmp / "digits.yaml", small_digits_config())
    assert main(["quantize", str(path)]) == 0
    out, err = capsys.readouterr()
    for label in ["FP32", "W2A8", "W4A8", "W8A8", "W16A16", "F_bits", "top1"]:
        assert label in out
    # progress on stderr at the default log level: layer, ETA, the end
    assert "calibration: ranges of stem.0: " in err and "ETA" in err
    assert err.rstrip().splitlines()[-1].startswith("calibration: done in ")
    rows = {
        row["config"]: row
        for row in json.loads((in_tmp / "runs/digits/uniform.json").read_text())
    }
    assert list(rows) == ["FP32", "W2A8", "W4A8", "W8A8", "W16A16"]
    fp32, w2, w8 = rows["FP32"], rows["W2A8"], rows["W8A8"]
    assert 0.9 < fp32["top1"] <= 1.0
    assert abs(w8["top1"] - fp32["top1"]) <= 0.005
    assert w2["f_cos"] > 10 * w8["f_cos"] > 0
    costs = [row["relative_cost"] for row in rows.values()]
    assert costs == [1.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2]
    assert (in_tmp / "runs/digits/quant_table.json").is_file()


# --- options common to every command ----------------------------------------------------


def test_version(capsys):
    from evoquant import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"evoquant {__version__}"


@pytest.mark.parametrize(
    "argv",
    [["-v", "status", "x"], ["status", "-v", "x"], ["status", "x", "--verbose"]],
)
def test_verbose_before_or_after_the_command(argv):
    from evoquant.cli import build_parser

    assert build_parser().parse_args(argv).verbose is True
    assert build_parser().parse_args(["status", "x"]).verbose is False


def test_help_is_for_users_and_shows_defaults(capsys):
    from evoquant.cli import build_parser

    text = build_parser().format_help()
    assert "calibrate" in text and "Only the standard library" not in text
    with pytest.raises(SystemExit):
        main(["bench-engine", "--help"])
    assert "(default: 200)" in capsys.readouterr().out


def test_quantize_is_the_old_name_of_calibrate():
    from evoquant.cli import build_parser, calibrate

    for name in ("calibrate", "quantize"):
        assert build_parser().parse_args([name, "c.yaml"]).handler is calibrate


def test_cfg_options_and_flags_merge_in_one_place():
    from evoquant.cli import apply_overrides, build_parser
    from evoquant.config import parse_config

    config = parse_config(small_digits_config())
    args = build_parser().parse_args(
        [
            "search", "c.yaml", "--pop-size", "6", "--cfg-options",
            "search.pop_size=8", "seed=3", "search.mutation=random_reset",
            "quant.alpha.enabled=false", "search.alphabet=[4, 8]",
        ]
    )  # fmt: skip
    changed = apply_overrides(config, args, {"search": {"pop_size": 6}, "seed": None})
    assert changed.search.pop_size == 8  # --cfg-options wins over the flag
    assert changed.seed == 3 and changed.search.mutation == "random_reset"
    assert changed.quant.alpha.enabled is False and changed.search.alphabet == [4, 8]
    assert changed.quant.alpha.start == config.quant.alpha.start  # merged, not replaced


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["search.popsize=8"], "command line: search.popsize: unknown key"),
        (["search.pop_size=1"], "search.pop_size: Value error, pop_size must be at least 2"),
        (["search.pop_size=many"], "command line: search.pop_size: Input should be a valid"),
        (["search.mutation=flip"], "unknown mutation 'flip': use one of adjacent, random_reset"),
        (["pop_size"], "--cfg-options 'pop_size': expected key=value"),
        (["search.alphabet=[4"], "--cfg-options 'search.alphabet=[4': the value is not valid YAML"),
    ],
)  # fmt: skip
def test_bad_cfg_options_are_one_line(capsys, in_tmp, options, match):
    config = write_config(in_tmp / "digits.yaml", small_digits_config())
    for command in ("search", "calibrate"):
        user_error(capsys, command, str(config), "--cfg-options", *options, match=match)
    assert not (in_tmp / "runs").exists()


def test_run_stopped_is_one_line_exit_2(capsys, monkeypatch):
    from evoquant import cli
    from evoquant.errors import RunStopped, UserError
    from evoquant.evaluate.ray_backend import WorkersLost

    assert issubclass(WorkersLost, RunStopped) and not issubclass(
        WorkersLost, UserError
    )

    def stopped(args):
        raise WorkersLost("every Ray worker is gone: 'evoquant resume x' continues")

    monkeypatch.setattr(cli, "status", stopped)
    monkeypatch.setattr(cli.build_parser, "__defaults__", None, raising=False)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["status"].set_defaults(handler=stopped)
    user_error(capsys, "status", "x", match="every Ray worker is gone")
