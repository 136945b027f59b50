"""Does the busy mode (``search.offspring``) cost front quality per evaluation?

The generational loop asks ``pop_size`` genomes a generation; ``offspring: workers``
on 64 workers and pop 100 asks 128 (two whole waves; 64, one wave, is the other way
to round). All run on bevfusion_mini (the demo's settings, pop 100) for about the
same number of evaluations, seed by seed, two runs at a time, on one shared quantization table, and the hypervolume of the archive front is
read after every generation (``hypervolume.json``: each run's reference point comes
from its uniform genomes, the same in every run since all share table and scenes;
the script checks that). Writes ``bench/results/idle_workers_front.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hardware import hardware

from evoquant.archive import Archive
from evoquant.report.front import archived_points, successful
from evoquant.report.hypervolume import reference_point
from evoquant.rundir import ARCHIVE_FILE, HYPERVOLUME_FILE, RunDir

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "problems" / "configs" / "bevfusion_mini_demo.yaml"
RESULTS = Path(__file__).parent / "results" / "idle_workers_front.json"
POP = 100
BUSY_OFFSPRING = [128, 64]
"""What ``offspring: workers`` resolves to for 64 workers and pop 100, and the other
way to round to whole waves."""
SIDE_BY_SIDE = 2
"""Runs at once: one per core."""


def command(run_dir: Path, seed: int, generations: int, offspring: int | None) -> list:
    options = [f"search.pop_size={POP}"]
    if offspring is not None:
        options.append(f"search.offspring={offspring}")
    return [
        sys.executable,
        "-m",
        "evoquant.cli",
        "search",
        str(CONFIG),
        "--run-dir",
        str(run_dir),
        "--backend",
        "local",
        "--seed",
        str(seed),
        "--generations",
        str(generations),
        "-q",
        "--cfg-options",
        *options,
    ]


def curve(run_dir: Path) -> dict:
    """Hypervolume after each generation against the evaluations spent by then."""
    record = RunDir(run_dir).read()
    archive = Archive(run_dir / ARCHIVE_FILE, read_only=True)
    try:
        archived = archived_points(archive.records())
    finally:
        archive.close()
    uniform = successful(archived, record.uniform_genomes)
    history = json.loads((run_dir / HYPERVOLUME_FILE).read_text())
    evaluations = [
        sum(1 for g, _ in archived.values() if g <= int(generation))
        for generation in history
    ]
    return {
        "reference_point": list(reference_point(uniform)),
        "evaluations": evaluations,
        "hypervolume": [round(v, 6) for v in history.values()],
    }


def at(run: dict, evaluations: int) -> float:
    """The hypervolume of the last generation finished within ``evaluations``."""
    best = 0.0
    for spent, value in zip(run["evaluations"], run["hypervolume"]):
        if spent <= evaluations:
            best = value
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--evaluations", type=int, default=1200)
    parser.add_argument("--offspring", type=int, nargs="+", default=BUSY_OFFSPRING)
    parser.add_argument(
        "--add",
        action="store_true",
        help="keep the runs in the results file and its table, run only the others",
    )
    args = parser.parse_args()
    base = ROOT / "runs" / "bench_idle_workers_front"
    table = base / "table"
    runs: dict[str, dict] = {}
    seeds = args.seeds
    if args.add:
        earlier = json.loads(RESULTS.read_text())
        runs = earlier["runs"]
        seeds = sorted({*earlier["inputs"]["seeds"], *args.seeds})
        for run in runs.values():
            run["reference_point"] = earlier["reference_point"]
            run.pop("seconds", None)  # an earlier version timed the pair, not the run
    else:
        shutil.rmtree(base, ignore_errors=True)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    if not table.exists():
        calibrate = [sys.executable, "-m", "evoquant.cli", "calibrate", str(CONFIG)]
        calibrate += ["--run-dir", str(table)]
        subprocess.run(calibrate, check=True, cwd=ROOT, env=env)
    variants = {"generational": None} | {f"offspring_{n}": n for n in args.offspring}
    pending = [
        (name, seed)
        for seed in args.seeds
        for name in variants
        if f"{name}_seed{seed}" not in runs
    ]
    for first in range(0, len(pending), SIDE_BY_SIDE):
        started = {}
        for name, seed in pending[first : first + SIDE_BY_SIDE]:
            run_dir = base / f"{name}_seed{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            for path in table.glob("quant_table.*"):
                shutil.copy(path, run_dir)
            offspring = variants[name]
            generations = 1 + (args.evaluations - POP) // (offspring or POP)
            cmd = command(run_dir, seed, generations, offspring)
            process = subprocess.Popen(cmd, cwd=ROOT, env=env)
            started[f"{name}_seed{seed}"] = (run_dir, seed, offspring, process)
        for key, (run_dir, seed, offspring, process) in started.items():
            if process.wait() != 0:
                raise SystemExit(f"{key} failed")
            runs[key] = curve(run_dir) | {"seed": seed, "offspring": offspring or POP}
    references = {tuple(run.pop("reference_point")) for run in runs.values()}
    if len(references) != 1:
        raise SystemExit(f"the runs' reference points differ: {references}")
    common = min(run["evaluations"][-1] for run in runs.values())
    budgets = sorted({*range(300, common, 300), common})
    comparison = {
        str(budget): {name: at(run, budget) for name, run in runs.items()}
        for budget in budgets
    }
    results = {
        "inputs": {
            "config": str(CONFIG.relative_to(ROOT)),
            "pop_size": POP,
            "backend": f"local, OMP_NUM_THREADS=1, {SIDE_BY_SIDE} runs at a time",
            "seeds": seeds,
            "evaluations": args.evaluations,
        },
        "hardware": hardware(),
        "reference_point": list(references.pop()),
        "hypervolume_at_evaluations": comparison,
        "runs": runs,
    }
    print(json.dumps(comparison, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
