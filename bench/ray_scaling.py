"""Ray back-end: throughput with 1 and 2 workers, and the dispatch cost per genome.

Scaling: the built-in digits problem (its QuantTable built once, alpha off: alpha does
not change the evaluation cost) and the same random genomes, scored in alternating
rounds by 1 and by 2 Ray workers of one thread each, both pools up the whole time, so
that a shared machine's changing load hits both alike (target ratio >= 1.8 on 2 cores);
the local back-end on one thread is the reference. Every round records the load
average. Overhead: a no-op fitness on 1, 2, 4, 8, 16 actors, wall time per genome
through ``RayEvaluator.evaluate`` (target <= 5 ms). The private Ray instance offers 16
logical CPUs so that 16 one-CPU actors can be placed: the overhead part oversubscribes
a small machine on purpose. Writes ``bench/results/ray_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from hardware import hardware

from evoquant.config import RunConfig, parse_config
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


def with_evaluator(config: RunConfig, **settings) -> RunConfig:
    evaluator = config.evaluator.model_copy(update=settings)
    return config.model_copy(update={"evaluator": evaluator})


def warm_up(evaluator, genomes: list[list[int]]) -> None:
    """Score genomes until every Ray worker has answered, so that no timing waits on a start."""
    list(evaluator.evaluate(genomes[:4]))
    while any(slot.state is None for slot in getattr(evaluator, "slots", ())):
        list(evaluator.evaluate(genomes[:8]))


def rate(evaluator, genomes: list[list[int]]) -> float:
    """Evaluations per second over one pass of ``genomes``."""
    start = time.perf_counter()
    count = sum(1 for _ in evaluator.evaluate(genomes))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genomes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
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
    rounds: list[dict] = []
    overhead: dict[str, float] = {}
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
        local = build_evaluator(
            with_evaluator(config, backend="local"), prepared, space, run_dir
        )
        with ray_session(None, run_dir, num_cpus=max(ACTORS)):
            one, two = (
                build_evaluator(
                    with_evaluator(config, workers=n), prepared, space, run_dir
                )
                for n in (1, 2)
            )
            with local, one, two:
                for evaluator in (local, one, two):
                    warm_up(evaluator, genomes)
                for number in range(args.rounds):
                    rounds.append(
                        {
                            "local": rate(local, genomes),
                            "1": rate(one, genomes),
                            "2": rate(two, genomes),
                            "load_average_1min": os.getloadavg()[0],
                        }
                    )
                    print(f"round {number}: {rounds[-1]}")
            for actors in ACTORS:
                options = config.evaluator.model_copy(update={"workers": actors})
                with RayEvaluator(
                    noop_fitness, prepared.table, space.bit_configs, options, run_dir
                ) as evaluator:
                    warm_up(evaluator, noop_genomes)
                    overhead[str(actors)] = 1e3 / rate(evaluator, noop_genomes)
                print(
                    f"{actors} no-op actor(s): {overhead[str(actors)]:.2f} ms per genome"
                )
    ratios = [r["2"] / r["1"] for r in rounds]
    results = {
        "hardware": hardware(load_average_at_start=load_at_start),
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
            "rounds_evaluations_per_s": rounds,
            "ratio_2_over_1_per_round": ratios,
            "ratio_2_over_1_median": statistics.median(ratios),
            "ratio_2_over_1_best": max(ratios),
            "target_ratio": 1.8,
        },
        "dispatch_overhead_ms_per_genome": overhead,
        "target_overhead_ms": 5.0,
    }
    print(
        f"2 / 1 workers: median {statistics.median(ratios):.2f}, "
        f"best {max(ratios):.2f} (target >= 1.8)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
