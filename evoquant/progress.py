"""Live progress of a search: the run's evaluations, this process's, archive hits, ETA."""

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
    """Counts the run's evaluations, those of this process and the archive's answers.

    The bar counts evaluations, the costly part: those the archive held when this
    process started (a resumed run's), then each result as it arrives (through
    ``wrap``). Archive hits are shown beside it and never move it, so its speed, and
    the ETA read from it, is that of real evaluations. ``pop_size x generations`` is
    only an upper bound on what is still to evaluate (mating may find fewer new
    genomes, the archive answers repeats), so the total reads ``<=`` and each finished
    generation trims it to what was evaluated plus the bound for what is left.
    ``generation`` is the one under way when it starts (a resumed run's next).
    """

    def __init__(
        self,
        per_generation: int,
        generations_left: int,
        evaluated_before: int = 0,
        enabled: bool = True,
        generation: int = 0,
    ):
        self.per_generation = per_generation
        self.generations_left = generations_left
        self.evaluated_before = evaluated_before
        self.total = evaluated_before + per_generation * generations_left
        self.cache_hits = 0
        self.evaluated = 0
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/<={task.total:.0f} evaluations"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self.task = self.bar.add_task(
            f"generation {generation}",
            total=self.total,
            completed=evaluated_before,
            detail="",
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

    def expect(self, evaluations: int) -> None:
        """``evaluations`` more are coming outside the generations (sensitivity probes)."""
        self._set_total(self.total + evaluations)

    def generation_done(self, generation: int, cached: int) -> None:
        """``generation`` is complete, ``cached`` of its genomes came from the archive."""
        self.cache_hits += cached
        self.generations_left = max(self.generations_left - 1, 0)
        self._set_total(
            self.evaluated_before
            + self.evaluated
            + self.per_generation * self.generations_left
        )
        self.bar.update(self.task, description=f"generation {generation + 1}")
        self._describe()

    def _set_total(self, total: int) -> None:
        self.total = total
        self.bar.update(self.task, total=total)

    def _describe(self) -> None:
        self.bar.update(
            self.task,
            detail=f"{self.evaluated} new, {self.cache_hits} from the archive",
        )

    def __enter__(self) -> Self:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()
