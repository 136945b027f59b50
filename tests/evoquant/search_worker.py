"""A cheap, deterministic search problem for the search tests, and a script that runs it.

``python search_worker.py RUN_DIR DELAY HISTORY_DIR`` runs a new search to
generation 6, sleeping ``DELAY`` seconds per evaluation and writing each generation's
population to ``HISTORY_DIR/gen_N.json``; the tests kill it with SIGKILL mid-run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from evoquant.config import RunConfig
from evoquant.driver import open_run
from evoquant.quant.layers import Layer
from evoquant.search import Search
from evoquant.space import SearchSpace

GENERATIONS = 6
LAYERS = [
    Layer(f"block{m}.{kind}{i}", kind, 0 if kind == "matmul" else 64 * (i + 1) + 17 * m)
    for m in range(4)
    for i, kind in enumerate(["conv2d", "conv2d", "linear", "matmul", "linear"])
]
SENSITIVITY = np.random.default_rng(123).uniform(0.1, 10.0, len(LAYERS))


def make_config(**search: object) -> RunConfig:
    settings = {"pop_size": 16, "generations": GENERATIONS}
    settings["objectives"] = ["f_bits", "error"]
    return RunConfig.model_validate(
        {"problem": {"name": "synthetic"}, "search": settings | search, "seed": 7}
    )


class SyntheticEvaluator:
    """error = sum_l s_l 2^-w_l, f_bits = sum_l w_l |W_l|; all-2-bit genomes "fail".

    Results come back in reverse order, as a pool of workers may deliver them.
    """

    def __init__(self, space: SearchSpace, delay: float = 0.0) -> None:
        self.space = space
        self.delay = delay
        self.evaluated: list[list[int]] = []

    def metrics(self, bits: list[int]) -> dict[str, float | str]:
        weights = np.array([w for w, _ in self.space.bit_configs(bits)], dtype=float)
        if np.all(weights == 2):
            return {"failed": "diverged"}
        sizes = np.array([layer.num_weights for layer in self.space.layers])
        return {
            "f_bits": float(weights @ sizes),
            "error": float(SENSITIVITY @ 2.0**-weights),
            "bops": float(weights @ weights),
        }

    def evaluate(self, genomes: list[list[int]]) -> Iterator[tuple[list[int], dict]]:
        for bits in reversed(genomes):
            time.sleep(self.delay)
            self.evaluated.append(list(bits))
            yield list(bits), self.metrics(bits)


def main(run_dir: str, delay: str, history: str) -> None:
    config = make_config()
    space = SearchSpace.from_config(LAYERS, config)
    history_dir = Path(history)
    history_dir.mkdir(parents=True, exist_ok=True)

    def record(gen: int, genomes: list[list[int]], F: np.ndarray, counts) -> None:
        (history_dir / f"gen_{gen}.json").write_text(json.dumps([genomes, F.tolist()]))

    record_, checkpoint, archive = open_run(Path(run_dir), config, space)
    search = Search(
        config,
        space,
        SyntheticEvaluator(space, float(delay)),
        archive,
        run_dir,
        record_,
        checkpoint=checkpoint,
        on_generation=record,
    )
    search.run()
    search.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
