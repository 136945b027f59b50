"""Reports through the command line: fixed layers end to end, NaN genomes as failures.

Small digits searches (local back-end, batches of 32, one calibration and one fitness
batch), each made once per module; later commands work on copies.
"""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from evoquant.archive import Archive
from evoquant.checkpoint import checkpoint_paths, read_checkpoint

# digits searches, resumes and exports through the command line
pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


def small(problem: str, pop_size: int, generations: int, **sections) -> dict:
    """A config for ``problem`` with one 32-sample batch each and a 3-step alpha grid."""
    args = {"batch_size": 32, "calibration_batches": 1, "fitness_batches": 1}
    return {
        "problem": {"name": problem, "args": args},
        "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
        "search": {"pop_size": pop_size, "generations": generations},
        "evaluator": {"backend": "local"},
        **sections,
    }


FIXED = small("digits", 4, 2, layers={"fixed": {"stem.0": 8}})
NAN = small("nan_digits:nan_digits", 6, 3)


@pytest.fixture(autouse=True, scope="module")
def nan_problem_importable():
    """``nan_digits`` (beside this file) importable for the searches and exports here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        yield
    sys.modules.pop("nan_digits", None)


def searched(root: Path, config: dict, cli) -> Path:
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    run = root / "run"
    assert cli("search", str(root / "config.yaml"), "--run-dir", str(run), "-q") == 0
    return run


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory, cli) -> Path:
    return searched(tmp_path_factory.mktemp("fixed"), FIXED, cli)


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory, cli) -> Path:
    return searched(tmp_path_factory.mktemp("nan"), NAN, cli)


def front_points(run: Path) -> list[dict]:
    """front.json's points; a NaN or infinity anywhere in it fails the test."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"front.json holds {constant}")

    return json.loads((run / "front.json").read_text(), parse_constant=refuse)["points"]


def test_fixed_layers_search_resume_plot_and_export(fixed_run, tmp_path, cli):
    run = Path(shutil.copytree(fixed_run, tmp_path / "run"))
    assert cli("resume", str(run), "--generations", "3", "-q") == 0
    assert cli("plot", str(run)) == 0
    assert cli("export", str(run)) == 0
    points = front_points(run)
    assert points and all(p["bits"]["stem.0"] == 8 for p in points)
    assert len({tuple(p["bits"].values()) for p in points}) == len(points)
    report = json.loads((run / "export" / "report.json").read_text())
    assert report["pick"]["rule"] == "knee"
    assert report["pick"]["bits"]["stem.0"] == 8
    summary = (run / "summary.md").read_text()
    for width in ("W2A8", "W4A8", "W8A8", "W16A16"):
        assert f"| {width} (fixed layers kept) |" in summary
    assert "- **generation**: 2\n" in summary
    asked = read_checkpoint(checkpoint_paths(run / "checkpoints")[-1]).n_eval
    archive = Archive(run / "archive.sqlite")
    try:
        evaluated = len(archive)
    finally:
        archive.close()
    assert evaluated <= asked <= 3 * FIXED["search"]["pop_size"]
    assert f"- **genomes asked for**: {asked}\n" in summary
    assert f"- **genomes evaluated**: {evaluated}\n" in summary
    assert f"- **served from the archive (repeats)**: {asked - evaluated}\n" in summary
    labels = json.loads((run / "run.json").read_text())["uniform_labels"]
    assert labels == [
        f"{w} (fixed layers kept)" for w in ("W2A8", "W4A8", "W8A8", "W16A16")
    ]


def test_nan_genomes_are_failures_the_reports_leave_out(nan_run, tmp_path, cli, capsys):
    archive = Archive(nan_run / "archive.sqlite")
    try:
        records = archive.records()
    finally:
        archive.close()
    failed = [r for r in records if r["status"] == "failed"]
    assert failed, "no genome had its head at 2 bits"
    assert {r["error"] for r in failed} == {"non-finite error: nan"}
    fc = json.loads((nan_run / "run.json").read_text())["layers"].index("fc")
    assert all(r["genome"][fc] == 2 for r in failed)
    assert all(r["genome"][fc] != 2 for r in records if r["status"] == "ok")

    points = front_points(nan_run)
    assert points and all(p["bits"]["fc"] != 2 for p in points)
    hypervolume = json.loads((nan_run / "hypervolume.json").read_text())
    assert sorted(hypervolume) == ["0", "1", "2"]
    assert all(math.isfinite(v) and v > 0 for v in hypervolume.values())
    summary = (nan_run / "summary.md").read_text()
    assert f"- **failed (worst objectives)**: {len(failed)}\n" in summary
    assert "- W2A8 failed: non-finite error: nan" in summary

    assert cli("status", str(nan_run)) == 0
    status = " ".join(capsys.readouterr().out.split())
    assert f"{len(records)} evaluations ({len(failed)} failed)" in status
    assert f"front of {len(points)}" in status

    run = Path(shutil.copytree(nan_run, tmp_path / "run"))
    assert cli("export", str(run), "--pick", "knee") == 0
    pick = json.loads((run / "export" / "report.json").read_text())["pick"]
    assert math.isfinite(pick["metrics"]["error"]) and pick["bits"]["fc"] != 2


def test_a_run_where_every_genome_fails_reports_it_instead_of_crashing(
    tmp_path, cli, capsys
):
    config = small("nan_digits:all_nan_digits", 4, 2)
    config["quant"]["alpha"] = {"enabled": False}
    run = searched(tmp_path, config, cli)
    summary = (run / "summary.md").read_text()
    assert "hypervolume**: not measured: no uniform configuration" in summary
    assert "every evaluation so far failed" in summary
    assert "- W2A8 failed: non-finite error: nan" in summary
    assert front_points(run) == []
    assert json.loads((run / "hypervolume.json").read_text()) == {}
    assert not (run / "validation.json").exists()
    capsys.readouterr()
    assert cli("status", str(run)) == 0
    status = " ".join(capsys.readouterr().out.split())
    assert "8 evaluations (8 failed), front of 0" in status
    assert cli("export", str(run)) == 2
    assert capsys.readouterr().err.strip().endswith("holds no front point")
