"""Live progress of a search: generation, evaluations done/total, cache hits, elapsed, ETA."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Self

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from evoquant.search import GenomeEvaluator


class SearchProgress:
    """Counts genomes as results arrive (through ``wrap``) and as generations close."""

    def __init__(self, total_genomes: int, done_genomes: int = 0, enabled: bool = True):
        self.cache_hits = 0
        self.evaluated = 0
        self.started = time.monotonic()
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self.task = self.bar.add_task(
            "generation -", total=total_genomes, completed=done_genomes, detail=""
        )

    def wrap(self, evaluator: GenomeEvaluator) -> GenomeEvaluator:
        progress = self

        class Counting:
            def evaluate(self, genomes: list[list[int]]) -> Iterator:
                for result in evaluator.evaluate(genomes):
                    progress.evaluated += 1
                    progress.bar.advance(progress.task)
                    progress._describe()
                    yield result

        return Counting()

    def generation_done(self, generation: int, evaluated: int, cached: int) -> None:
        self.cache_hits += cached
        self.bar.advance(self.task, cached)
        self.bar.update(self.task, description=f"generation {generation + 1}")
        self._describe()

    def _describe(self) -> None:
        self.bar.update(
            self.task,
            detail=f"{self.evaluated} evaluated, {self.cache_hits} cache hits",
        )

    def __enter__(self) -> Self:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()
