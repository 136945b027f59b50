"""Live progress of a search: generation, genomes asked, evaluations vs archive hits, ETA."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from evoquant.evaluate.protocol import GenomeEvaluator


class SearchProgress:
    """Counts the genomes the search asks for, each evaluated or served from the archive.

    Evaluations count as their results arrive (through ``wrap``), archive hits when a
    generation closes. ``pop_size x generations`` is only an upper bound on what is
    asked (mating may find fewer new genomes) and far above what is evaluated (repeats
    come from the archive), so the total reads ``<=`` and each finished generation
    trims it to what was really asked.
    """

    def __init__(
        self,
        per_generation: int,
        generations_left: int,
        asked: int = 0,
        enabled: bool = True,
    ):
        self.per_generation = per_generation
        self.total = asked + per_generation * generations_left
        self.cache_hits = 0
        self.evaluated = 0
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/<={task.total:.0f} genomes"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self.task = self.bar.add_task(
            "generation -", total=self.total, completed=asked, detail=""
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
        """``evaluated + cached`` genomes were asked for in ``generation``."""
        self.cache_hits += cached
        self.total -= self.per_generation - (evaluated + cached)
        self.bar.update(
            self.task,
            advance=cached,
            total=self.total,
            description=f"generation {generation + 1}",
        )
        self._describe()

    def _describe(self) -> None:
        self.bar.update(
            self.task,
            detail=f"{self.evaluated} evaluated, {self.cache_hits} from the archive",
        )

    def __enter__(self) -> Self:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()
