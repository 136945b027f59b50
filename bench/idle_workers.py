"""How much of the Ray workers' time is idle at the generation barrier, before and after
``search.offspring: workers``?

The real back-end (``RayEvaluator``: its pool, its queueing, a private Ray instance)
scores generations of genomes on W actors that sleep for an evaluation's time instead
of running a model: the thesis's ~7 s per BEVFusion evaluation scaled down 100x to
70 ms and 28x to 250 ms (at 70 ms two loaded cores cannot dispatch to 16 or more
workers fast enough), spread lognormally (sigma 0.2), each genome's duration drawn
once. A generation is one ``evaluate`` call, as ``Search.run`` makes it: 100 genomes
in generation 0, then ``pop_size`` (before) or ``offspring_for(W)`` (after: the
fewest whole waves holding ``pop_size``) a generation; the most whole waves within
``pop_size`` (the other way to round) are measured beside them.

Idle fraction = 1 - busy / available, summed over generations: busy is the sleep the
actors report (their own clock, the same machine's), available is W x the time from
the ``evaluate`` call to its last result. It splits into the barrier (a worker done
with its last genome while others still run: the short last wave and the spread of
durations) and overhead (Ray's dispatch and the driver, between evaluations). The
variants alternate generation by generation on the same actors. Ray is given
``--logical-cpus`` CPUs (64 actors on this 2-core machine only sleep); the memory of
Ray and its actors is read from /proc. Writes ``bench/results/idle_workers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hardware import hardware

from evoquant.config import EvaluatorConfig, SearchConfig
from evoquant.evaluate.ray_backend import RayEvaluator
from evoquant.evaluate.ray_session import ray_session
from evoquant.search import offspring_for

RESULTS = Path(__file__).parent / "results" / "idle_workers.json"
POP = 100
SIGMA = 0.2
START_LIMIT_S = 600
"""Ray starts worker processes two at a time: 64 take minutes on a loaded machine."""


@dataclass(frozen=True)
class SleepState:
    """What ``RayEvaluator`` reads of a ping's answer (``WorkerState``'s fields), made
    here so the actor never imports torch."""

    pid: int
    host: str
    error: str | None = None


class SleepWorker:
    """An evaluation actor that takes the genome's duration and measures nothing else."""

    def __init__(self, factory, table, threads) -> None:
        pass

    def ping(self) -> SleepState:
        return SleepState(os.getpid(), socket.gethostname())

    def evaluate(self, seconds: float) -> dict:
        started = time.time()
        time.sleep(seconds)
        return {"started": started, "finished": time.time(), "pid": os.getpid()}


class SleepEvaluator(RayEvaluator):
    """The real pool and queueing around ``SleepWorker``s; its table is ``{}``, as
    they read none."""

    worker_class = SleepWorker


def rss_mib(pids: set[int] | None = None) -> float:
    """Resident memory of ``pids`` (default: this process and every one below it:
    the driver, Ray's daemons, its workers), from /proc."""
    parents, rss = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], rss[pid] = int(fields[1]), int(fields[21])
    if pids is None:
        pids, frontier = {os.getpid()}, {os.getpid()}
        while frontier:
            frontier = {
                child for child, parent in parents.items() if parent in frontier
            }
            pids |= frontier
    return sum(rss.get(pid, 0) for pid in pids) * os.sysconf("SC_PAGE_SIZE") / 2**20


def generation(evaluator: RayEvaluator, genomes: list) -> Counter[str]:
    """Worker-seconds of one ``evaluate`` call: ``available`` (W x its duration),
    ``busy`` (the actors' sleep), ``barrier`` (each worker's wait from its last result
    to the generation's end: what a short last wave costs) and ``overhead`` (the rest:
    waits before and between a worker's evaluations, Ray's dispatch)."""
    start = time.time()
    last_finish: dict[int, float] = {}
    busy = 0.0
    for _, metrics in evaluator.evaluate(genomes):
        busy += metrics["finished"] - metrics["started"]
        pid = metrics["pid"]
        last_finish[pid] = max(last_finish.get(pid, start), metrics["finished"])
    end = time.time()
    available = evaluator.workers * (end - start)
    idle_workers = evaluator.workers - len(last_finish)  # had nothing at all
    barrier = sum(end - t for t in last_finish.values()) + idle_workers * (end - start)
    return Counter(
        available=available,
        busy=busy,
        barrier=barrier,
        overhead=available - busy - barrier,
    )


def fractions(sums: Counter[str]) -> dict[str, float]:
    """Idle, and its two parts, as fractions of the available worker-seconds."""
    return {
        "idle": round(1 - sums["busy"] / sums["available"], 4),
        "barrier": round(sums["barrier"] / sums["available"], 4),
        "overhead": round(sums["overhead"] / sums["available"], 4),
    }


def measure(
    workers: int, mean_s: float, generations: int, run_dir: Path, seed: int
) -> dict:
    waves = -(-POP // workers)  # the generational loop's waves, the last one short
    variants = {
        "before": POP,
        "after": offspring_for(
            SearchConfig(pop_size=POP, offspring="workers"), workers
        ),
        "fewer_whole_waves": max(workers, (waves - 1) * workers),
    }
    rng = np.random.default_rng(seed)
    durations: dict[tuple[int], float] = {}
    next_id = iter(range(10**9))

    def new_genomes(count: int) -> list[list[int]]:
        genomes = [[next(next_id)] for _ in range(count)]
        for genome in genomes:
            durations[tuple(genome)] = float(
                mean_s * rng.lognormal(-(SIGMA**2) / 2, SIGMA)
            )
        return genomes

    options = EvaluatorConfig(workers=workers, retries=0)

    def to_seconds(bits: list[int]) -> float:  # what the actor is sent for a genome
        return durations[tuple(bits)]

    totals = {name: Counter() for name in variants}
    steady = {name: Counter() for name in variants}
    with SleepEvaluator(None, {}, to_seconds, options, run_dir) as evaluator:
        starting = time.time()
        while any(slot.state is None for slot in evaluator.slots):
            if time.time() - starting > START_LIMIT_S:
                ready = sum(slot.state is not None for slot in evaluator.slots)
                raise SystemExit(f"{ready} of {workers} actors started")
            # unmeasured genomes, while the last actors answer their pings
            list(evaluator.evaluate(new_genomes(2 * workers)))
        ready_s = time.time() - starting
        total_mib = rss_mib()
        actors_mib = rss_mib({slot.state.pid for slot in evaluator.slots})
        for name in variants:  # generation 0: pop_size in both
            totals[name].update(generation(evaluator, new_genomes(POP)))
        for _ in range(generations - 1):
            for name, size in variants.items():  # interleaved
                sums = generation(evaluator, new_genomes(size))
                totals[name].update(sums)  # update, not +: keeps every sign
                steady[name].update(sums)
    return {
        "workers": workers,
        "mean_evaluation_s": mean_s,
        "genomes_per_generation": variants,
        "idle_fraction": {name: fractions(s) for name, s in totals.items()},
        "idle_fraction_after_generation_0": {
            name: fractions(s) for name, s in steady.items()
        },
        "worker_seconds": {
            name: {k: round(v, 3) for k, v in s.items()} for name, s in totals.items()
        },
        "actors_ready_s": round(ready_s, 1),
        "rss_mib_driver_ray_and_actors": round(total_mib, 1),
        "rss_mib_per_actor": round(actors_mib / workers, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 16, 64])
    parser.add_argument("--mean-s", type=float, nargs="+", default=[0.07, 0.25])
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--logical-cpus", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="idle-") as run_dir,
        ray_session(None, Path(run_dir), num_cpus=args.logical_cpus),
    ):
        for mean_s in args.mean_s:
            for workers in args.workers:
                row = measure(
                    workers, mean_s, args.generations, Path(run_dir), seed=workers
                )
                print(json.dumps(row))
                rows.append(row)
    results = {
        "inputs": {
            "pop_size": POP,
            "generations": args.generations,
            "evaluation_seconds": f"mean_evaluation_s x lognormal(-sigma²/2, sigma {SIGMA})",
            "ray_logical_cpus": args.logical_cpus,
            "mode_after": "search.offspring: workers",
        },
        "hardware": hardware(),
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
