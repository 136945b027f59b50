"""Ray back-end: throughput with 1 and 2 workers, and the dispatch cost per genome.

Scaling: the built-in digits problem (its QuantTable built once, alpha off: alpha does
not change the evaluation cost), the same random genomes scored by 1 then 2 Ray
workers of one thread each, several rounds each, best round kept (target ratio >= 1.8
on 2 cores); the local back-end on one thread is the reference. Overhead: a no-op
fitness on 1, 2, 4, 8, 16 actors; wall time per genome through
``RayEvaluator.evaluate`` (target <= 5 ms). The private Ray instance offers 16 logical
CPUs so that 16 one-CPU actors can be placed: the overhead part oversubscribes a small
machine on purpose. Writes ``bench/results/ray_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evoquant.config import parse_config
from evoquant.driver import build_evaluator, build_space
from evoquant.evaluate.attempt import Configs
from evoquant.evaluate.ray_backend import RayEvaluator
from evoquant.evaluate.ray_session import ray_session
from evoquant.pipeline import prepare
from evoquant.quant.table import QuantTable

RESULTS = Path(__file__).parent / "results" / "ray_scaling.json"
ACTORS = (1, 2, 4, 8, 16)


def noop_fitness(table: QuantTable):
    """A fitness that costs nothing: what is left is the dispatch."""

    def score(configs: Configs) -> dict[str, float]:
        return {}

    return score


def warm_up(evaluator, genomes: list[list[int]]) -> None:
    """Score genomes until every Ray worker has answered, so that no timing waits on a start."""
    list(evaluator.evaluate(genomes[:4]))
    while any(slot.state is None for slot in getattr(evaluator, "slots", ())):
        list(evaluator.evaluate(genomes[:8]))


def rates(evaluator, genomes: list[list[int]], rounds: int) -> list[float]:
    """Evaluations per second of each round."""
    warm_up(evaluator, genomes)
    found = []
    for _ in range(rounds):
        start = time.perf_counter()
        count = sum(1 for _ in evaluator.evaluate(genomes))
        found.append(count / (time.perf_counter() - start))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genomes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noop-genomes", type=int, default=2000)
    args = parser.parse_args()
    problem_args = {"batch_size": 64, "calibration_batches": 2, "fitness_batches": 6}
    config = parse_config(
        {
            "problem": {"name": "digits", "args": problem_args},
            "quant": {"alpha": {"enabled": False}},
            "evaluator": {"threads_per_worker": 1},
        }
    )
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ray-scaling-") as tmp:
        run_dir = Path(tmp)
        prepared = prepare(config, run_dir)
        space = build_space(prepared, config)
        rng = np.random.default_rng(0)
        genomes, noop_genomes = (
            [
                [int(b) for b in rng.choice(space.alphabet, space.n_genes)]
                for _ in range(count)
            ]
            for count in (args.genomes, args.noop_genomes)
        )
        local = config.model_copy(
            update={
                "evaluator": config.evaluator.model_copy(update={"backend": "local"})
            }
        )
        with build_evaluator(local, prepared, space, run_dir) as evaluator:
            local_rates = rates(evaluator, genomes, args.rounds)
        print(f"local, 1 thread: {max(local_rates):.1f} evaluations/s")
        scaling, overhead = {}, {}
        with ray_session(None, run_dir, num_cpus=max(ACTORS)):
            for workers in (1, 2):
                ray_config = config.model_copy(
                    update={
                        "evaluator": config.evaluator.model_copy(
                            update={"workers": workers}
                        )
                    }
                )
                with build_evaluator(ray_config, prepared, space, run_dir) as evaluator:
                    scaling[workers] = rates(evaluator, genomes, args.rounds)
                print(
                    f"{workers} Ray worker(s): {max(scaling[workers]):.1f} evaluations/s"
                )
            for actors in ACTORS:
                options = config.evaluator.model_copy(update={"workers": actors})
                with RayEvaluator(
                    noop_fitness, prepared.table, space, options, run_dir
                ) as evaluator:
                    per_second = max(rates(evaluator, noop_genomes, 1))
                overhead[actors] = 1e3 / per_second
                print(f"{actors} no-op actor(s): {overhead[actors]:.2f} ms per genome")
    ratio = max(scaling[2]) / max(scaling[1])
    results = {
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
        },
        "inputs": {
            "problem": "digits",
            "problem_args": problem_args,
            "layers": space.n_genes,
            "genomes_per_round": args.genomes,
            "rounds": args.rounds,
            "threads_per_worker": 1,
            "noop_genomes": args.noop_genomes,
        },
        "scaling": {
            "local_evaluations_per_s": max(local_rates),
            "ray_evaluations_per_s": {str(k): max(v) for k, v in scaling.items()},
            "ray_rounds_evaluations_per_s": {str(k): v for k, v in scaling.items()},
            "ratio_2_over_1": ratio,
            "target_ratio": 1.8,
        },
        "dispatch_overhead_ms_per_genome": {str(k): v for k, v in overhead.items()},
        "target_overhead_ms": 5.0,
    }
    print(f"2 / 1 workers: {ratio:.2f} (target >= 1.8)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
