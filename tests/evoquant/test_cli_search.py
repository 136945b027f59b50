"""Acceptance: ``evoquant search`` on digits (the shipped config, 40 x 25), then its reports.

One search per module, made through the command line with the default digits settings
(only the weights cache moves to the session's tmp dir). Later commands (plot, resume)
work on copies, so the tests do not depend on their order.
"""

import json
import logging
import shutil
from pathlib import Path

import matplotlib.image
import pytest
import torch
import yaml

from evoquant.archive import Archive
from evoquant.cli import main
from evoquant.evaluate.fitness import GenomeFitness
from evoquant.pipeline import prepare
from evoquant.report.front import knee_point
from evoquant.report.summary import compact_bits
from evoquant.search import read_run_config

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
    cache = tmp_path_factory.getbasetemp() / "digits-cache"  # shared with test_cli.py
    cache.mkdir(exist_ok=True)
    root = tmp_path_factory.mktemp("acceptance")
    config = yaml.safe_load(DIGITS_CONFIG.read_text())
    config["problem"].setdefault("args", {})["cache_dir"] = str(cache)
    (root / "digits.yaml").write_text(yaml.safe_dump(config))
    argv = ["search", "digits.yaml", "--name", "accept", "-q"]
    argv += ["--pop-size", str(POP_SIZE), "--generations", str(GENERATIONS)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert cli(*argv) == 0
    return root / "runs" / "accept"


@pytest.fixture(scope="module")
def front(run_dir) -> list[dict]:
    """front.json with ``bits`` as a list in genome (layer) order."""
    points = json.loads((run_dir / "front.json").read_text())
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


def test_front_and_uniform_points(uniform, front):
    """Not an assertion: the numbers the acceptance report quotes (``pytest -s``)."""
    print(f"\nfront of {len(front)} points")
    for bits, point in sorted(uniform.items()):
        print(show(f"uniform W{bits}", point))
        for q in front:
            if q["f_bits"] <= point["f_bits"] and q["error"] < point["error"]:
                print("    " + show(f"dominated by {compact_bits(q['bits'])}", q))


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


def test_uniform_w8_is_on_the_front_because_digits_admits_nothing_better(
    run_dir, front
):
    """On digits, W8 is Pareto-optimal under the thesis cost, so the front must keep it.

    A genome as cheap as W8 must take some layer below 8 bits. First-order bound from
    single-layer changes of W8: the smallest error any demotion to 4 bits adds exceeds
    all that promoting every other layer to 16 bits could remove, so no such genome
    has a lower error than W8.
    """
    config = read_run_config(run_dir)
    prepared = prepare(config, run_dir, rebuild_stale=False)
    fitness = GenomeFitness(
        prepared.problem, prepared.model, prepared.table, prepared.layers
    )
    size = len(prepared.layers)
    base = fitness([8] * size)["error"]

    def changed(layer: int, bits: int) -> float:
        genome = [8] * size
        genome[layer] = bits
        return fitness(genome)["error"]

    least_demotion_cost = min(changed(i, 4) - base for i in range(size))
    most_promotion_gain = sum(max(0.0, base - changed(i, 16)) for i in range(size))
    assert least_demotion_cost > most_promotion_gain
    assert any(p["bits"] == [8] * size for p in front)


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
