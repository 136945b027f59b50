"""Acceptance: ``evoquant search`` on digits (the shipped config, 40 x 25), then its reports.

One search per module, made through the command line with the shipped digits config and
weights. Later commands (plot, resume) work on copies, so the tests do not depend on
their order.
"""

import json
import logging
import shutil
from pathlib import Path

import matplotlib.image
import pytest
import torch

from evoquant.archive import FAILED, Archive
from evoquant.checkpoint import checkpoint_paths, read_checkpoint
from evoquant.cli import main
from evoquant.quant.layers import find_layers
from evoquant.report.front import knee_point
from evoquant.report.summary import compact_bits
from problems.cnn.digits import load_digits_net

# the 40 x 25 acceptance search (about a minute)
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DIGITS_CONFIG = REPO / "problems" / "configs" / "digits.yaml"
POP_SIZE, GENERATIONS = 40, 25
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNIFORM_BITS = (2, 4, 8, 16)


def cli(*argv: str) -> int:
    """``main(argv)``, then drop the console handler it adds to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return main(list(argv))
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one thread is faster and immune to contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_torch_thread) -> Path:
    """``evoquant search digits.yaml --pop-size 40 --generations 25`` in a tmp dir."""
    root = tmp_path_factory.mktemp("acceptance")
    shutil.copy(DIGITS_CONFIG, root / "digits.yaml")
    argv = ["search", "digits.yaml", "--name", "accept", "-q"]
    argv += ["--pop-size", str(POP_SIZE), "--generations", str(GENERATIONS)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert cli(*argv) == 0
    return root / "runs" / "accept"


@pytest.fixture(scope="module")
def front(run_dir) -> list[dict]:
    """front.json with ``bits`` as a list in genome (layer) order."""
    points = json.loads((run_dir / "front.json").read_text())["points"]
    return [p | {"bits": list(p["bits"].values())} for p in points]


@pytest.fixture(scope="module")
def uniform(run_dir, front) -> dict[int, dict]:
    """The archived metrics of the all-2/4/8/16 genomes, by bit-width."""
    n_layers = len(front[0]["bits"])
    archive = Archive(run_dir / "archive.sqlite")
    try:
        found = archive.get_many([[b] * n_layers for b in UNIFORM_BITS])
    finally:
        archive.close()
    assert len(found) == len(UNIFORM_BITS)
    return {genome[0]: metrics for genome, metrics in found.items()}


def dominates(a: dict, b: dict) -> bool:
    no_worse = a["f_bits"] <= b["f_bits"] and a["error"] <= b["error"]
    return no_worse and (a["f_bits"] < b["f_bits"] or a["error"] < b["error"])


def show(label: str, point: dict) -> str:
    return (
        f"{label}: f_bits {point['f_bits']:.0f} relative_cost {point['relative_cost']:.5f}"
        f" error {point['error']:.6g} top1 {point['top1']:.4f}"
    )


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, path


def test_every_generation_is_plotted_and_reported(run_dir, front):
    plots = run_dir / "plots"
    expected = [f"gen_{g:04d}.png" for g in range(GENERATIONS)]
    assert sorted(p.name for p in plots.glob("gen_*.png")) == expected
    for name in expected:
        assert_png(plots / name)
    assert_png(plots / "hypervolume.png")
    for name in ["front.csv", "front.json", "summary.md"]:
        assert (run_dir / name).is_file(), name
    csv_lines = (run_dir / "front.csv").read_text().splitlines()
    assert len(csv_lines) == len(front) + 1
    knee = knee_point(front, ("f_bits", "error"))
    summary = (run_dir / "summary.md").read_text()
    assert "Knee" in summary
    assert f"`{compact_bits(knee['bits'])}`" in summary
    print(f"\nknee: {compact_bits(knee['bits'])}  {show('knee', knee)}")


def test_uniform_points_cost_their_bits_times_the_weights(uniform):
    """F_bits of uniform W<b> is b bits for every weight; its relative cost is b / 32."""
    n_weights = sum(layer.num_weights for layer in find_layers(load_digits_net()))
    for bits, point in uniform.items():
        assert point["f_bits"] == bits * n_weights
        assert point["relative_cost"] == pytest.approx(bits / 32)


def test_uniform_w4_is_strictly_dominated_by_the_front(uniform, front):
    point = uniform[4]
    better = [
        q
        for q in front
        if q["f_bits"] <= point["f_bits"] and q["error"] < point["error"]
    ]
    assert better, (
        f"W4 ({point['f_bits']:.0f} bits, error {point['error']:.4g}) is not dominated"
    )


def test_the_front_is_what_no_archived_genome_dominates(run_dir, front, uniform):
    """front.json holds exactly the trade-offs that no successful archived genome
    dominates, survivors or not, so uniform W8 is on it exactly when nothing beats it."""
    last = read_checkpoint(checkpoint_paths(run_dir / "checkpoints")[-1])
    archive = Archive(run_dir / "archive.sqlite")
    try:
        archived = [r["metrics"] for r in archive.records() if r["status"] == "ok"]
        found = archive.get_many(last.genomes)
    finally:
        archive.close()
    population = [m for m in found.values() if FAILED not in m]

    def vector(point: dict) -> tuple[float, float]:
        return point["f_bits"], point["error"]

    def best(points: list[dict]) -> set[tuple[float, float]]:
        return {vector(p) for p in points if not any(dominates(q, p) for q in points)}

    assert {vector(p) for p in front} == best(archived)
    w8 = uniform[8]
    beaten = any(dominates(q, w8) for q in archived)
    assert (vector(w8) in best(archived)) == (not beaten)
    lost = best(archived) - {vector(p) for p in population}
    print(
        f"\narchive front {len(front)} points, last population's front "
        f"{len(best(population))}, {len(lost)} front points not in the last population"
    )


def test_no_uniform_configuration_dominates_the_front(uniform, front):
    for bits, point in uniform.items():
        beaten = [compact_bits(q["bits"]) for q in front if dominates(point, q)]
        assert not beaten, f"W{bits} dominates front points {beaten}"


def test_status(run_dir, capsys):
    assert cli("status", str(run_dir)) == 0
    out = " ".join(capsys.readouterr().out.split())
    archive = Archive(run_dir / "archive.sqlite")
    try:
        evaluations = len(archive)
    finally:
        archive.close()
    hypervolume = json.loads((run_dir / "hypervolume.json").read_text())[
        str(GENERATIONS - 1)
    ]
    assert f"generation {GENERATIONS} of {GENERATIONS}" in out
    assert f"{evaluations} evaluations" in out
    assert f"hypervolume: {hypervolume:.6g}" in out
    assert POP_SIZE <= evaluations <= POP_SIZE * GENERATIONS


def test_plot_redraws_deleted_plots(run_dir, tmp_path, capsys):
    copy = copy_run(run_dir, tmp_path)
    for name in ["gen_0010.png", "hypervolume.png"]:
        (copy / "plots" / name).unlink()
    (copy / "summary.md").unlink()
    assert cli("plot", str(copy)) == 0
    assert f"redrew {GENERATIONS} generations" in capsys.readouterr().out
    assert_png(copy / "plots" / "gen_0010.png")
    assert_png(copy / "plots" / "hypervolume.png")
    assert (copy / "summary.md").read_text() == (run_dir / "summary.md").read_text()
    assert (copy / "front.json").read_text() == (run_dir / "front.json").read_text()


def test_resume_continues_past_the_configured_generations(run_dir, tmp_path):
    copy = copy_run(run_dir, tmp_path)
    argv = ["resume", str(copy), "--generations", str(GENERATIONS + 2), "-q"]
    assert cli(*argv) == 0
    archive = Archive(copy / "archive.sqlite")
    try:
        populations = archive.populations()
    finally:
        archive.close()
    assert sorted(populations) == list(range(GENERATIONS + 2))
    assert all(len(genomes) == POP_SIZE for genomes in populations.values())
    checkpoints = sorted(p.name for p in (copy / "checkpoints").glob("gen_*.json"))
    assert checkpoints == [
        f"gen_{g:04d}.json" for g in range(GENERATIONS - 1, GENERATIONS + 2)
    ]
    assert_png(copy / "plots" / f"gen_{GENERATIONS + 1:04d}.png")
    assert (copy / "run.json").read_bytes() == (run_dir / "run.json").read_bytes()
