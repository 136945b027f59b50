"""Does the demo search beat uniform quantization on the mini BEVFusion?

Runs ``evoquant search problems/configs/bevfusion_mini_demo.yaml`` (calibration
included, timed), then compares the final population's Pareto front in (f_bits, f_box)
with the uniform genomes, which the search evaluated in generation 0 on the same fitness
scenes: uniform W4A8 and W8A8 must each be strictly dominated by a front point, and no
uniform genome may dominate a front point (docs/method.md, acceptance). Wall and CPU
seconds are both recorded because the machine may be shared. Writes
``bench/results/bevfusion_mini_front.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hardware import hardware

from evoquant.archive import Archive
from evoquant.report.front import pareto_front
from evoquant.rundir import ARCHIVE_FILE

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "problems" / "configs" / "bevfusion_mini_demo.yaml"
RESULTS = Path(__file__).parent / "results" / "bevfusion_mini_front.json"
LAYERS = 108
KEYS = ("f_bits", "relative_cost", "f_box", "mAP", "NDS")


def dominates(a: dict, b: dict) -> bool:
    """a is no worse in cost and error and strictly better in one."""
    no_worse = a["f_bits"] <= b["f_bits"] and a["f_box"] <= b["f_box"]
    return no_worse and (a["f_bits"] < b["f_bits"] or a["f_box"] < b["f_box"])


def strictly_dominates(a: dict, b: dict) -> bool:
    """The acceptance test for the uniform baselines: lower-or-equal cost and lower error."""
    return a["f_bits"] <= b["f_bits"] and a["f_box"] < b["f_box"]


def summarise(point: dict) -> dict:
    return {k: round(float(point[k]), 6) for k in KEYS}


def compare(run_dir: Path) -> dict:
    archive = Archive(run_dir / ARCHIVE_FILE)
    try:
        populations = archive.populations()
        last = max(populations)
        found = archive.get_many(populations[last])
        front = pareto_front(list(found.values()), ("f_bits", "f_box"))
        uniform = {
            f"W{b}": m
            for (b, *_), m in archive.get_many(
                [[b] * LAYERS for b in (2, 4, 8, 16)]
            ).items()
        }
    finally:
        archive.close()
    beaten = {
        name: next(
            (summarise(p) for p in front if strictly_dominates(p, uniform[name])), None
        )
        for name in ("W4", "W8")
    }
    dominated_front = [
        summarise(p) for p in front if any(dominates(u, p) for u in uniform.values())
    ]
    return {
        "generations": last + 1,
        "front": [summarise(p) for p in front],
        "uniform": {name: summarise(m) for name, m in uniform.items()},
        "uniform_W4A8_and_W8A8_dominated_by": beaten,
        "front_points_dominated_by_a_uniform": dominated_front,
        "beats_uniform": all(beaten.values()) and not dominated_front,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="bench_bevfusion_mini_demo")
    args = parser.parse_args()
    run_dir = ROOT / "runs" / args.name
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "evoquant.cli",
        "search",
        str(CONFIG),
        "--name",
        args.name,
        "-q",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    results = {
        "inputs": {
            "config": str(CONFIG.relative_to(ROOT)),
            "command": " ".join(command[1:]),
        },
        "hardware": hardware(),
        "search_seconds_including_calibration": round(seconds, 1),
        "search_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
    } | compare(run_dir)
    print(json.dumps({k: v for k, v in results.items() if k != "front"}, indent=1))
    print(f"front of {len(results['front'])} points")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
