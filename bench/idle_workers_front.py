"""Does the busy mode (``search.offspring``) cost front quality per evaluation?

The generational loop asks ``pop_size`` genomes a generation; ``offspring: workers``
on 64 workers and pop 100 asks 64 (one whole wave). Both run on bevfusion_mini
(the demo's settings, pop 100) for about the same number of evaluations, seed by
seed, on one shared quantization table, and the hypervolume of the archive front is
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
BUSY_OFFSPRING = 64
"""What ``offspring: workers`` resolves to for 64 workers and pop 100."""


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
    parser.add_argument(
        "--add",
        action="store_true",
        help="keep the runs in the results file and its table, run only these seeds",
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
    variants = {
        "generational": None,
        f"offspring_{BUSY_OFFSPRING}": BUSY_OFFSPRING,
    }
    for seed in args.seeds:
        started = {}
        for name, offspring in variants.items():  # the two variants side by side
            run_dir = base / f"{name}_seed{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            for path in table.glob("quant_table.*"):
                shutil.copy(path, run_dir)
            per_generation = offspring or POP
            generations = 1 + (args.evaluations - POP) // per_generation
            cmd = command(run_dir, seed, generations, offspring)
            started[name] = (run_dir, subprocess.Popen(cmd, cwd=ROOT, env=env))
        for name, (run_dir, process) in started.items():
            if process.wait() != 0:
                raise SystemExit(f"{name} seed {seed} failed")
            runs[f"{name}_seed{seed}"] = curve(run_dir) | {
                "seed": seed,
                "offspring": variants[name] or POP,
            }
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
            "backend": "local, OMP_NUM_THREADS=1, both variants of a seed at once",
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
